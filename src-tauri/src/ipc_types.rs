//! The TypeScript declarations of every value that crosses the IPC, generated from the Rust types
//! themselves (ts-rs reads their serde attributes), so the UI cannot drift from what the commands
//! send and accept. `ui/src/backend/ipc.ts` is this module's output, checked in; the test below
//! fails when it differs from what the types give now, and rewrites it when run with
//! `SPREADOUT_WRITE_IPC_TYPES=1`. The same holds for `ui/src/backend/engine-settings.ts`, the
//! engine's training settings as `startup` sends them, which the mock backend sends in turn.

#[cfg(test)]
mod tests {
    use ts_rs::{Config, TS};

    use crate::commands::{self, data, explore, export, train};
    use spreadout::{augment, data as library_data, device, eval, explore as library_explore};
    use spreadout::{method, model, train as library_train};

    /// `export type …` for `T`, with its doc comment.
    fn declaration<T: TS>(config: &Config) -> String {
        let docs = T::docs().unwrap_or_default();
        format!("{docs}export {}\n", T::decl(config))
    }

    /// The whole file, types in the order the UI reads them.
    fn declarations() -> String {
        // serde_json writes 64-bit integers as plain numbers; every count here fits a double.
        let config = Config::new().with_large_int("number");
        let parts = [
            declaration::<crate::error::CommandError>(&config),
            declaration::<commands::Progress>(&config),
            declaration::<crate::Startup>(&config),
            declaration::<commands::ImageList>(&config),
            declaration::<data::FolderSummary>(&config),
            declaration::<library_data::SkippedFile>(&config),
            declaration::<data::FolderCheck>(&config),
            declaration::<library_data::CachedFolder>(&config),
            declaration::<data::CacheSummary>(&config),
            declaration::<augment::AugmentOps>(&config),
            declaration::<augment::Normalization>(&config),
            declaration::<data::ViewPair>(&config),
            declaration::<data::ViewsPreview>(&config),
            declaration::<device::Compute>(&config),
            declaration::<device::AdapterKind>(&config),
            declaration::<device::Adapter>(&config),
            declaration::<train::Devices>(&config),
            declaration::<spreadout::remote::RemoteTarget>(&config),
            declaration::<spreadout::remote::RemoteDevice>(&config),
            declaration::<device::DeviceChoice>(&config),
            declaration::<spreadout::optim::Schedule>(&config),
            declaration::<method::Method>(&config),
            declaration::<method::NegativeSampling>(&config),
            declaration::<method::Positive>(&config),
            declaration::<method::MethodSettings>(&config),
            declaration::<model::Precision>(&config),
            declaration::<library_train::AugmentOn>(&config),
            declaration::<library_train::TrainConfig>(&config),
            declaration::<library_train::Limit>(&config),
            declaration::<library_train::SettingLimits>(&config),
            declaration::<method::MethodInfo>(&config),
            declaration::<library_train::TrainSettings>(&config),
            declaration::<eval::Histogram>(&config),
            declaration::<eval::PairKind>(&config),
            declaration::<eval::SimilarityDistributions>(&config),
            declaration::<spreadout::eval::Neighbor>(&config),
            declaration::<library_train::ProbeNeighbors>(&config),
            declaration::<library_train::ScoredOn>(&config),
            declaration::<library_train::EpochMetrics>(&config),
            declaration::<library_train::Phase>(&config),
            declaration::<spreadout::support::error_kind::ErrorKind>(&config),
            declaration::<library_train::TrainEvent>(&config),
            declaration::<train::StartTraining>(&config),
            declaration::<library_train::SettingChange>(&config),
            declaration::<train::Resumed>(&config),
            declaration::<library_data::FolderFingerprint>(&config),
            declaration::<library_train::run_folder::runs::RunRecord>(&config),
            declaration::<library_train::run_folder::runs::Snapshot>(&config),
            declaration::<library_train::run_folder::runs::RunInfo>(&config),
            declaration::<library_train::run_folder::runs::DeletedRun>(&config),
            declaration::<explore::CollectionInfo>(&config),
            declaration::<library_explore::MapMethod>(&config),
            declaration::<library_explore::DuplicateGroup>(&config),
            declaration::<library_explore::DuplicateLink>(&config),
            declaration::<library_explore::Stage>(&config),
            declaration::<library_explore::KeepSuggestion>(&config),
            declaration::<library_explore::ThresholdSuggestion>(&config),
            declaration::<library_explore::Readiness>(&config),
            declaration::<library_explore::Cluster>(&config),
            declaration::<library_explore::Clustering>(&config),
            declaration::<explore::TableFormat>(&config),
            declaration::<library_explore::Distributions>(&config),
            declaration::<export::Exported>(&config),
        ];
        format!(
            "// Generated from the Rust types by src-tauri/src/ipc_types.rs: do not edit. To update after\n\
             // changing a type: SPREADOUT_WRITE_IPC_TYPES=1 cargo test -p spreadout-app ipc_types\n\n{}",
            parts.join("\n")
        )
    }

    /// The engine's settings as a TypeScript module, for the mock backend.
    fn engine_settings() -> String {
        let settings = serde_json::to_string_pretty(&library_train::TrainSettings::default())
            .expect("the settings serialise");
        format!(
            "// Generated from the engine by src-tauri/src/ipc_types.rs: do not edit. To update after\n\
             // changing the engine's settings: SPREADOUT_WRITE_IPC_TYPES=1 cargo test -p spreadout-app ipc_types\n\n\
             import type {{ TrainSettings }} from './ipc';\n\n\
             /** What the desktop backend's `startup` sends as `settings`: `TrainSettings::default()`. */\n\
             export const ENGINE_SETTINGS: TrainSettings = {settings};\n"
        )
    }

    /// Fails when the checked-in `ui/src/backend/{file}` differs from `generated`; rewrites it
    /// instead with `SPREADOUT_WRITE_IPC_TYPES` set.
    fn check_or_write(file: &str, generated: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ui/src/backend")
            .join(file);
        if std::env::var_os("SPREADOUT_WRITE_IPC_TYPES").is_some() {
            std::fs::write(&path, generated).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is out of date with the Rust types; regenerate it with \
             SPREADOUT_WRITE_IPC_TYPES=1 cargo test -p spreadout-app ipc_types",
            path.display()
        );
    }

    #[test]
    fn the_ui_declarations_match_the_rust_types() {
        check_or_write("ipc.ts", &declarations());
    }

    #[test]
    fn the_mock_backends_settings_are_the_engines() {
        check_or_write("engine-settings.ts", &engine_settings());
    }
}
