//! The `thumb:` protocol: serves square JPEG thumbnails of image files below the folders the person
//! opened, decoded off the UI thread and kept in a bounded memory cache so scrolling back is free.
//! URLs are `thumb://localhost/<percent-encoded absolute path>` (the UI builds them with
//! `convertFileSrc(path, "thumb")`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use tauri::http::{Request, Response, StatusCode, header};
use tauri::{Manager, UriSchemeContext, UriSchemeResponder, Wry};

use crate::state::AppState;

/// Thumbnail side in pixels: sharp in a grid cell of up to ~128 CSS pixels on a 1× display.
const SIDE: u32 = 128;
/// Cached thumbnails (about 6 KiB each): the grid's working set, ~50 MiB at most.
const CACHE_ENTRIES: usize = 8192;

type Cache = Mutex<HashMap<PathBuf, Vec<u8>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Answers one `thumb:` request on a worker thread.
pub fn serve(
    context: UriSchemeContext<'_, Wry>,
    request: Request<Vec<u8>>,
    responder: UriSchemeResponder,
) {
    let app = context.app_handle().clone();
    let encoded = request.uri().path().trim_start_matches('/').to_owned();
    tauri::async_runtime::spawn_blocking(move || {
        let path = PathBuf::from(
            percent_encoding::percent_decode_str(&encoded)
                .decode_utf8_lossy()
                .into_owned(),
        );
        responder.respond(respond(&app.state::<AppState>(), path));
    });
}

fn respond(state: &AppState, path: PathBuf) -> Response<Vec<u8>> {
    if !state.is_allowed(&path) {
        return plain(
            StatusCode::FORBIDDEN,
            "not inside a folder opened in Spreadout",
        );
    }
    if let Some(bytes) = cache().lock().expect("lock").get(&path) {
        return jpeg(bytes.clone());
    }
    match spreadout::data::thumbnail_jpeg(&path, SIDE) {
        Ok(bytes) => {
            let mut cache = cache().lock().expect("lock");
            if cache.len() >= CACHE_ENTRIES {
                // Dropping everything is crude but bounded and rare; the browser keeps its own cache.
                cache.clear();
            }
            cache.insert(path, bytes.clone());
            jpeg(bytes)
        }
        Err(error) => plain(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string()),
    }
}

fn jpeg(bytes: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CACHE_CONTROL, "max-age=3600")
        .body(bytes)
        .expect("static headers are valid")
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

    #[test]
    fn serves_jpegs_inside_opened_folders_only_and_names_bad_files() {
        let data = tempfile::tempdir().unwrap();
        let photos = tempfile::tempdir().unwrap();
        let good = photos.path().join("good.png");
        image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]))
            .save(&good)
            .unwrap();
        let bad = photos.path().join("bad.jpg");
        std::fs::write(&bad, b"not a jpeg").unwrap();
        let state = AppState::new(
            data.path(),
            spreadout::data::PixelCache::at(data.path().join("cache")),
            false,
            false,
        );

        assert_eq!(
            respond(&state, good.clone()).status(),
            StatusCode::FORBIDDEN
        );
        state.allow(photos.path());
        let response = respond(&state, good);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "image/jpeg");
        let thumbnail = image::load_from_memory(response.body()).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (SIDE, SIDE));

        let response = respond(&state, bad);
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(String::from_utf8_lossy(response.body()).contains("bad.jpg"));
    }
}
