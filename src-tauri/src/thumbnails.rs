//! The `thumb:` protocol: square JPEG thumbnails of image files below the folders the person
//! opened. Requests go to a fixed pool of decoder threads through a bounded queue (scrolling
//! through 100 000 images never starts 100 000 decodes), results are kept on disk keyed by the
//! file's path, size and modification time (a second visit, even after a restart, decodes nothing;
//! an edited photo gets a new thumbnail) and in a small memory cache, and a decoder that fails or
//! panics is answered with an error image naming the problem instead of never answering.
//! URLs are `thumb://localhost/<percent-encoded absolute path>` (the UI builds them with
//! `convertFileSrc(path, "thumb")`).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use tauri::http::{Request, Response, StatusCode, header};
use tauri::{Manager, UriSchemeContext, UriSchemeResponder, Wry};

use crate::state::AppState;

/// Thumbnail side in pixels: sharp in a grid cell of up to ~128 CSS pixels on a 1× display.
const SIDE: u32 = 128;
/// Thumbnails kept in memory (about 6 KiB each): a few screens of the grid, ~12 MiB.
const MEMORY_ENTRIES: usize = 2048;
/// Requests waiting for a decoder; more than a few screens of cells means the person scrolled
/// past them, and the grid asks again for what is still in view.
const QUEUE: usize = 1024;
/// Header carrying the reason when the body is the error image.
const ERROR_HEADER: &str = "x-spreadout-error";
/// Shown in place of a thumbnail that could not be made.
const ERROR_IMAGE: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128"><rect width="128" height="128" fill="#3a3a3a"/><path d="M40 40L88 88M88 40L40 88" stroke="#d65c5c" stroke-width="8" stroke-linecap="round"/></svg>"##;

type Reply = Box<dyn FnOnce(Response<Vec<u8>>) + Send>;

struct Job {
    path: PathBuf,
    reply: Reply,
}

/// The decoder pool with its caches; managed by Tauri.
pub struct Thumbnails {
    jobs: SyncSender<Job>,
}

/// Thumbnails already made, by file and version.
struct Caches {
    disk: PathBuf,
    memory: Mutex<MemoryCache>,
}

#[derive(Default)]
struct MemoryCache {
    bytes: HashMap<String, Arc<Vec<u8>>>,
    order: VecDeque<String>,
}

impl MemoryCache {
    fn insert(&mut self, key: String, bytes: Arc<Vec<u8>>) {
        if self.bytes.insert(key.clone(), bytes).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > MEMORY_ENTRIES {
            if let Some(oldest) = self.order.pop_front() {
                self.bytes.remove(&oldest);
            }
        }
    }
}

impl Thumbnails {
    /// Starts `workers` decoder threads keeping thumbnails in `disk` (created when needed).
    pub fn start(disk: PathBuf, workers: usize) -> Self {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let caches = Arc::new(Caches {
            disk,
            memory: Mutex::new(MemoryCache::default()),
        });
        for worker in 0..workers.max(1) {
            let (queue, caches) = (queue.clone(), caches.clone());
            std::thread::Builder::new()
                .name(format!("spreadout-thumbnails-{worker}"))
                .spawn(move || work(&queue, |path| thumbnail(&caches, path)))
                .expect("the OS can start a thread");
        }
        Self { jobs }
    }

    /// Queues a thumbnail of `path`; `reply` is called exactly once, from a worker, or at once
    /// when the queue is full.
    pub fn request(&self, path: PathBuf, reply: impl FnOnce(Response<Vec<u8>>) + Send + 'static) {
        let job = Job {
            path,
            reply: Box::new(reply),
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => (job.reply)(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many thumbnails are being made; try again",
            )),
        }
    }
}

/// A worker: takes jobs until the service is dropped, answering each with `make`, or with the
/// error image when `make` panics.
fn work(queue: &Mutex<Receiver<Job>>, make: impl Fn(&Path) -> Response<Vec<u8>>) {
    loop {
        // The lock is held only while waiting for the next job.
        let job = match queue.lock().expect("lock").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let path = job.path;
        let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make(&path)))
            .unwrap_or_else(|panic| {
                error_image(&format!(
                    "making the thumbnail of {} crashed: {}",
                    path.display(),
                    spreadout::support::panics::panic_message(panic.as_ref())
                ))
            });
        (job.reply)(response);
    }
}

/// The thumbnail of `path` from memory, from disk, or decoded and kept in both.
fn thumbnail(caches: &Caches, path: &Path) -> Response<Vec<u8>> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) => return error_image(&format!("cannot read {}: {error}", path.display())),
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos());
    let mut key_source = spreadout::support::paths::os_bytes(path.as_os_str());
    key_source.extend_from_slice(&meta.len().to_le_bytes());
    key_source.extend_from_slice(&modified.to_le_bytes());
    key_source.extend_from_slice(&SIDE.to_le_bytes());
    let key = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&key_source));
    if let Some(bytes) = caches.memory.lock().expect("lock").bytes.get(&key) {
        return jpeg(bytes.as_ref().clone());
    }
    let on_disk = caches.disk.join(&key[..2]).join(format!("{key}.jpg"));
    let bytes = match std::fs::read(&on_disk) {
        // A file cut short by a crash fails this check and is made again.
        Ok(bytes) if bytes.starts_with(&[0xFF, 0xD8]) && bytes.ends_with(&[0xFF, 0xD9]) => bytes,
        _ => match spreadout::data::thumbnail_jpeg(path, SIDE) {
            Ok(bytes) => {
                if let Err(error) = keep(&on_disk, &bytes) {
                    tracing::debug!("thumbnail not kept on disk: {error}");
                }
                bytes
            }
            Err(error) => return error_image(&error.to_string()),
        },
    };
    let bytes = Arc::new(bytes);
    caches
        .memory
        .lock()
        .expect("lock")
        .insert(key, bytes.clone());
    jpeg(bytes.as_ref().clone())
}

/// Writes a thumbnail atomically; no fsync, since a thumbnail lost to a power cut is only made
/// again.
fn keep(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    spreadout::support::atomic_file::write_unsynced(path, bytes)
}

/// Answers one `thumb:` request: refused outside the opened folders, queued otherwise.
pub fn serve(
    context: UriSchemeContext<'_, Wry>,
    request: Request<Vec<u8>>,
    responder: UriSchemeResponder,
) {
    let app = context.app_handle();
    let path = decode_path(request.uri().path());
    if !app.state::<AppState>().is_allowed(&path) {
        return responder.respond(plain(
            StatusCode::FORBIDDEN,
            "not inside a folder opened in Spreadout",
        ));
    }
    app.state::<Thumbnails>()
        .request(path, move |response| responder.respond(response));
}

/// The file a URL path names: percent-decoded, then the escapes of bytes that are not UTF-8 turned
/// back into those bytes ([`spreadout::support::paths::from_text`]), so such a file is found exactly.
fn decode_path(url_path: &str) -> PathBuf {
    let text =
        percent_encoding::percent_decode_str(url_path.trim_start_matches('/')).decode_utf8_lossy();
    spreadout::support::paths::from_text(&text)
}

fn jpeg(bytes: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CACHE_CONTROL, "max-age=3600")
        .body(bytes)
        .expect("static headers are valid")
}

/// The error image (a grid cell shows it like any thumbnail), with the reason in a header.
fn error_image(reason: &str) -> Response<Vec<u8>> {
    // Header values must be visible ASCII.
    let header_text: String = reason
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    Response::builder()
        .header(header::CONTENT_TYPE, "image/svg+xml")
        .header(ERROR_HEADER, header_text)
        .body(ERROR_IMAGE.as_bytes().to_vec())
        .expect("sanitised header value")
}

fn plain(status: StatusCode, message: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(message.as_bytes().to_vec())
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(service: &Thumbnails, path: PathBuf) -> Response<Vec<u8>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        service.request(path, move |response| sender.send(response).unwrap());
        receiver
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap()
    }

    #[test]
    fn thumbnails_are_square_jpegs_kept_on_disk_and_remade_when_the_file_changes() {
        let photos = tempfile::tempdir().unwrap();
        let disk = tempfile::tempdir().unwrap();
        let good = photos.path().join("good.png");
        image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]))
            .save(&good)
            .unwrap();
        let service = Thumbnails::start(disk.path().to_owned(), 2);
        let response = ask(&service, good.clone());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "image/jpeg");
        let thumbnail = image::load_from_memory(response.body()).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (SIDE, SIDE));
        let kept = || {
            walk(disk.path())
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
                .count()
        };
        assert_eq!(kept(), 1);

        // A restart (new service, empty memory) serves the kept file; an edit makes a new one.
        let restarted = Thumbnails::start(disk.path().to_owned(), 1);
        assert_eq!(ask(&restarted, good.clone()).body(), response.body());
        std::thread::sleep(std::time::Duration::from_millis(20));
        image::RgbImage::from_pixel(50, 30, image::Rgb([10, 200, 10]))
            .save(&good)
            .unwrap();
        let edited = image::load_from_memory(ask(&restarted, good).body()).unwrap();
        assert!(edited.to_rgb8().get_pixel(64, 64).0[1] > 150);
        assert_eq!(kept(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_thumbnail_url_names_a_file_that_is_not_utf8_exactly() {
        use std::os::unix::ffi::OsStrExt;
        let photos = tempfile::tempdir().unwrap();
        let latin1 = photos
            .path()
            .join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
        image::RgbImage::from_pixel(20, 20, image::Rgb([1, 2, 3]))
            .save(&latin1)
            .unwrap();
        // What the UI does: convertFileSrc percent-encodes the path's text as UTF-8.
        let text = spreadout::support::paths::to_text(&latin1);
        let url_path: String =
            percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(decode_path(&format!("/{url_path}")), latin1);
    }

    #[test]
    fn bad_files_get_the_error_image_with_their_reason() {
        let photos = tempfile::tempdir().unwrap();
        let disk = tempfile::tempdir().unwrap();
        let bad = photos.path().join("bad.jpg");
        std::fs::write(&bad, b"not a jpeg").unwrap();
        let service = Thumbnails::start(disk.path().to_owned(), 1);
        for path in [bad, photos.path().join("missing.png")] {
            let response = ask(&service, path.clone());
            assert_eq!(response.headers()[header::CONTENT_TYPE], "image/svg+xml");
            let reason = response.headers()[ERROR_HEADER].to_str().unwrap();
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(reason.contains(name), "{reason}");
        }
    }

    #[test]
    fn concurrent_requests_are_all_answered_by_the_bounded_pool() {
        let photos = tempfile::tempdir().unwrap();
        let disk = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..8u8)
            .map(|i| {
                let path = photos.path().join(format!("{i}.png"));
                image::RgbImage::from_pixel(300, 200, image::Rgb([i * 30, 90, 200]))
                    .save(&path)
                    .unwrap();
                path
            })
            .collect();
        let service = Arc::new(Thumbnails::start(disk.path().to_owned(), 3));
        let askers: Vec<_> = (0..24)
            .map(|i| {
                let (service, path) = (service.clone(), files[i % files.len()].clone());
                std::thread::spawn(move || ask(&service, path))
            })
            .collect();
        for asker in askers {
            let response = asker.join().unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "image/jpeg");
        }
    }

    #[test]
    fn a_panicking_decode_is_answered_with_the_error_image_and_the_worker_lives_on() {
        let (jobs, queue) = sync_channel::<Job>(4);
        let (sender, receiver) = std::sync::mpsc::channel();
        for name in ["hostile.jpg", "fine.jpg"] {
            let sender = sender.clone();
            jobs.send(Job {
                path: PathBuf::from(name),
                reply: Box::new(move |response| sender.send(response).unwrap()),
            })
            .unwrap();
        }
        drop(jobs);
        work(&Mutex::new(queue), |path| {
            if path.ends_with("hostile.jpg") {
                panic!("decoder bug");
            }
            jpeg(vec![0xFF, 0xD8, 0xFF, 0xD9])
        });
        let hostile = receiver.recv().unwrap();
        assert_eq!(hostile.headers()[header::CONTENT_TYPE], "image/svg+xml");
        let reason = hostile.headers()[ERROR_HEADER].to_str().unwrap();
        assert!(
            reason.contains("hostile.jpg") && reason.contains("decoder bug"),
            "{reason}"
        );
        let fine = receiver.recv().unwrap();
        assert_eq!(fine.headers()[header::CONTENT_TYPE], "image/jpeg");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
        found
    }
}
