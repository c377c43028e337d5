# Sourced by the scripts that train on CIFAR-10: `cifar_sample DEST SPLIT:COUNT …` unpacks
# ${CIFAR_ARCHIVE:-../shared/data/cifar10-jpg.tar.gz} to a temporary folder and copies the first
# COUNT images (by name) of every class of each SPLIT to DEST/SPLIT/<class>/.
cifar_sample() {
  local dest="$1" full root split name count class_dir class
  shift
  full="$(mktemp -d)"
  tar -xzf "${CIFAR_ARCHIVE:-../shared/data/cifar10-jpg.tar.gz}" -C "$full"
  root="$(dirname "$(find "$full" -maxdepth 3 -type d -name train | head -n1)")"
  for split in "$@"; do
    name="${split%%:*}" count="${split##*:}"
    for class_dir in "$root/$name"/*/; do
      class="$(basename "$class_dir")"
      mkdir -p "$dest/$name/$class"
      find "$class_dir" -type f | sort | sed -n "1,${count}p" | xargs -I{} cp {} "$dest/$name/$class/"
    done
  done
  rm -rf "$full"
}
