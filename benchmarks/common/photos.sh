# Sourced by the benchmark scripts: `make_photos OUT COUNT [make_photos.py options]` writes COUNT
# crops of the photographs scikit-image ships (benchmarks/common/make_photos.py) into OUT unless it already
# holds them, in a virtual environment ($SPREADOUT_VENV) with Pillow, and pillow-heif for HEIC.
venv=${SPREADOUT_VENV:-/var/cache/spreadout/bench-venv}

make_photos() {
  local out=$1 count=$2
  shift 2
  [ -n "$(find "$out" -name "photo-$(printf %05d $((count - 1))).*" 2>/dev/null)" ] && return 0
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c 'import PIL, pillow_heif, numpy' 2>/dev/null ||
    "$venv/bin/pip" install --quiet pillow 'pillow-heif==1.8.1' numpy
  local wheel_dir
  wheel_dir=$(mktemp -d)
  "$venv/bin/pip" download --quiet --no-deps -d "$wheel_dir" scikit-image
  "$venv/bin/python" benchmarks/common/make_photos.py "$wheel_dir"/scikit_image-*.whl "$out" "$count" "$@"
  rm -rf "$wheel_dir"
}
