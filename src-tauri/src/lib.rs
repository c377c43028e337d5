//! Spreadout's desktop app: a thin Tauri adapter over the `spreadout` library. Commands live in
//! [`commands`] (one module per screen), shared state in [`state`], the `{code, message}` error
//! shape in [`error`], the thumbnail protocol in [`thumbnails`], and the generated TypeScript
//! declarations of the IPC types in [`ipc_types`]; [`notify`] says when a long run ends, and
//! [`closing`] lets a run write its checkpoint before the app closes.

mod closing;
mod commands;
mod error;
mod ipc_types;
mod notify;
mod state;
mod thumbnails;

use serde::Serialize;
use tauri::{Manager, State};

use state::AppState;

/// What the UI needs to know when it starts.
#[derive(Debug, Serialize, ts_rs::TS)]
struct Startup {
    /// Open the demo data set right away (`--demo`).
    open_demo: bool,
    /// Expose the end-to-end test hooks.
    test_hooks: bool,
    /// Where runs are written.
    #[serde(with = "spreadout::support::paths")]
    #[ts(type = "string")]
    runs_root: std::path::PathBuf,
    /// Extensions of the files this build reads as images (with HEIC only where libheif is
    /// built in), for the file dialogs.
    image_extensions: Vec<String>,
    /// The engine's training defaults, limits and per-method values, which the settings form
    /// offers and checks (the UI keeps no copy of them).
    settings: spreadout::train::TrainSettings,
}

#[tauri::command]
fn startup(state: State<'_, AppState>) -> Startup {
    Startup {
        open_demo: state.open_demo,
        test_hooks: state.test_hooks,
        runs_root: state.runs_root.clone(),
        image_extensions: spreadout::data::IMAGE_EXTENSIONS
            .iter()
            .map(|&ext| ext.to_owned())
            .collect(),
        settings: spreadout::train::TrainSettings::default(),
    }
}

/// Builds and runs the app; returns when the last window closes.
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "spreadout=info,spreadout_app=info".into()),
        )
        .init();
    let open_demo = std::env::args().any(|arg| arg == "--demo");
    let test_hooks = std::env::var("SPREADOUT_TEST_HOOKS").is_ok_and(|value| value == "1");
    tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .setup(move |app| manage_state(app, open_demo, test_hooks))
        .on_window_event(|window, event| {
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                let closed = window.clone();
                if closing::stop_training_first(window.app_handle(), move || {
                    let _ = closed.destroy();
                }) {
                    api.prevent_close();
                }
            }
        })
        .register_asynchronous_uri_scheme_protocol("thumb", thumbnails::serve)
        .invoke_handler(invoke_handler())
        .build(tauri::generate_context!())
        .expect("error while building Spreadout")
        .run(|app, event| {
            // Quitting (the app menu, the OS) rather than closing the window: the same stop.
            if let tauri::RunEvent::ExitRequested {
                api, code: None, ..
            } = event
            {
                let quitting = app.clone();
                if closing::stop_training_first(app, move || quitting.exit(0)) {
                    api.prevent_exit();
                }
            }
        });
}

/// The app's state and thumbnail server, in the data and cache folders the app is pointed at.
fn manage_state(
    app: &mut tauri::App,
    open_demo: bool,
    test_hooks: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    // Tests point the app at a throw-away data folder so runs never mix with a person's. The
    // local folder, not the roaming one: on Windows `app_data_dir` is %APPDATA% (Roaming), which
    // follows a person's profile between machines, and runs hold gigabytes of weights; on Linux
    // and macOS the two are the same folder.
    let data_dir = match std::env::var_os("SPREADOUT_DATA_DIR") {
        Some(dir) => dir.into(),
        None => app.path().app_local_data_dir()?,
    };
    std::fs::create_dir_all(&data_dir)?;
    // Before any device opens, so a second launch starts with tuned, compiled kernels.
    let cache_dir = match std::env::var_os("SPREADOUT_DATA_DIR") {
        Some(dir) => std::path::PathBuf::from(dir).join("cache"),
        None => app.path().app_cache_dir()?,
    };
    spreadout::device::configure_kernel_cache(&cache_dir);
    // Shared with the CLI, unless a data folder of its own was asked for (the tests).
    let pixel_cache = match (
        std::env::var_os("SPREADOUT_CACHE_DIR"),
        std::env::var_os("SPREADOUT_DATA_DIR"),
    ) {
        (Some(dir), _) => spreadout::data::PixelCache::at(dir),
        (None, Some(_)) => spreadout::data::PixelCache::at(cache_dir.join("pixels")),
        (None, None) => spreadout::data::PixelCache::default_location(),
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 6));
    app.manage(thumbnails::Thumbnails::start(
        pixel_cache.root().join("thumbnails"),
        workers,
    ));
    app.manage(AppState::new(
        &data_dir,
        pixel_cache,
        spreadout::explore::ResolvedStore::default_location(),
        open_demo,
        test_hooks,
    ));
    Ok(())
}

/// Every command the UI can invoke.
fn invoke_handler() -> impl Fn(tauri::ipc::Invoke) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        startup,
        commands::data::scan_folder,
        commands::data::cache_summary,
        commands::data::clear_cache,
        commands::data::check_folder,
        commands::data::cancel_job,
        commands::data::demo_folders,
        commands::data::augment_preview,
        commands::train::list_devices,
        commands::train::connect_remote,
        commands::train::start_training,
        commands::train::resume_training,
        commands::train::pause_training,
        commands::train::unpause_training,
        commands::train::stop_training,
        commands::train::list_runs,
        commands::train::open_run,
        commands::train::rename_run,
        commands::train::delete_run,
        commands::explore::open_collection,
        commands::explore::neighbors,
        commands::explore::query_file,
        commands::explore::distributions,
        commands::explore::embedding_map,
        commands::explore::duplicate_threshold,
        commands::explore::find_duplicates,
        commands::explore::readiness,
        commands::explore::open_hashed_folder,
        commands::explore::save_duplicates,
        commands::explore::mark_duplicates_resolved,
        commands::explore::cluster_collection,
        commands::explore::save_clusters,
        commands::export::export_model,
        commands::export::export_embeddings,
    ]
}
