//! What the app holds between commands: the running training, embedded collections, the folders
//! the person opened (the thumbnail protocol serves files below these only), cancellable jobs,
//! where runs, the demo data and the tokens of served devices live, and which token a served
//! device is reached with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use spreadout::data::PixelCache;
use spreadout::device::DeviceChoice;
use spreadout::explore::{Collection, HashedFolder, Opened, ResolvedStore};
use spreadout::remote;
use spreadout::train::Control;

use crate::error::{CommandError, CommandResult};

/// Embedded collections kept for quick switching (a run's snapshots side by side); each holds
/// `n × dim` floats, 51 MB for 100 000 images at 128-d.
pub const KEPT_COLLECTIONS: usize = 8;

/// Folders kept hashed without a model (40 bytes and a file entry per image each).
pub const KEPT_HASHED: usize = 2;

/// Shared state of the app, managed by Tauri.
pub struct AppState {
    /// Folder holding one subfolder per training run.
    pub runs_root: PathBuf,
    /// Folder of the generated demo data set.
    pub demo_root: PathBuf,
    /// Folder of the tokens "Another machine…" keeps, one file per server.
    pub servers: PathBuf,
    /// Whether the app was started to open the demo data set (`--demo`).
    pub open_demo: bool,
    /// Whether end-to-end test hooks are exposed to the UI (`SPREADOUT_TEST_HOOKS=1`).
    pub test_hooks: bool,
    /// The preprocessed image cache (shared with the CLI unless `SPREADOUT_CACHE_DIR` says otherwise).
    pub pixel_cache: PixelCache,
    /// Near-duplicate groups marked resolved (shared with the CLI).
    pub decisions: ResolvedStore,
    /// The active run's folder and control.
    training: Mutex<Option<(PathBuf, Arc<Control>)>>,
    collections: Mutex<Recent<Collection>>,
    /// Folders opened in Explore without a model (their perceptual hashes only).
    hashed: Mutex<Recent<HashedFolder>>,
    allowed_roots: RwLock<Vec<PathBuf>>,
    jobs: Mutex<HashMap<String, Arc<AtomicBool>>>,
}

impl AppState {
    /// State for an app whose data lives in `data_dir`, whose image cache is `pixel_cache` and
    /// whose near-duplicate decisions `decisions` keeps.
    pub fn new(
        data_dir: &Path,
        pixel_cache: PixelCache,
        decisions: ResolvedStore,
        open_demo: bool,
        test_hooks: bool,
    ) -> Self {
        Self {
            runs_root: data_dir.join("runs"),
            demo_root: data_dir.join("demo"),
            servers: data_dir.join("servers"),
            open_demo,
            test_hooks,
            pixel_cache,
            decisions,
            training: Mutex::new(None),
            collections: Mutex::new(Recent::new(KEPT_COLLECTIONS)),
            hashed: Mutex::new(Recent::new(KEPT_HASHED)),
            allowed_roots: RwLock::new(vec![data_dir.to_owned()]),
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// `device` as the backend uses it: a served device with the token this app keeps for its
    /// server, whatever token file the web view named, so that the backend never reads a file a
    /// script in the web view points it at, nor sends that file to an address of its choosing.
    /// Every command that reaches a device the web view chose passes it through here. Any other
    /// choice is returned as it is.
    ///
    /// # Errors
    /// Not a server's address, or no token kept for that server (the person has not connected
    /// to it under "Another machine…").
    pub fn with_kept_token(&self, device: DeviceChoice) -> CommandResult<DeviceChoice> {
        let DeviceChoice::Remote(target) = device else {
            return Ok(device);
        };
        let kept = remote::kept_token_file(&self.servers, &target.address)?;
        if !kept.token_file.as_deref().is_some_and(Path::is_file) {
            return Err(CommandError::new(
                "device",
                format!(
                    "{} needs the server's token: choose \"Another machine…\" and paste the token file `spreadout serve` wrote there",
                    kept.address
                ),
            ));
        }
        Ok(DeviceChoice::Remote(kept))
    }

    /// Lets the thumbnail protocol serve files below `folder` (a folder the person chose).
    pub fn allow(&self, folder: &Path) {
        let folder = folder.canonicalize().unwrap_or_else(|_| folder.to_owned());
        let mut roots = self.allowed_roots.write().expect("lock");
        if !roots.iter().any(|root| folder.starts_with(root)) {
            roots.push(folder);
        }
    }

    /// Whether `file` lies below a folder the person chose; links are resolved first so a link
    /// cannot lead outside.
    pub fn is_allowed(&self, file: &Path) -> bool {
        let Ok(file) = file.canonicalize() else {
            return false;
        };
        let roots = self.allowed_roots.read().expect("lock");
        roots.iter().any(|root| file.starts_with(root))
    }

    /// Starts a run in `run_dir` with `start` unless another run is active (then nothing is
    /// started), and keeps the new run's control for pause/resume/stop.
    pub fn begin_training<T>(
        &self,
        run_dir: &Path,
        start: impl FnOnce() -> (T, Arc<Control>),
    ) -> CommandResult<T> {
        let mut slot = self.training.lock().expect("lock");
        if slot.is_some() {
            return Err(CommandError::new(
                "busy",
                "a training run is already active; stop it before starting another",
            ));
        }
        let (run, control) = start();
        *slot = Some((run_dir.to_owned(), control));
        Ok(run)
    }

    /// Forgets the run in `run_dir` once it has ended (and only that run: a later one may
    /// already hold the slot).
    pub fn end_training(&self, run_dir: &Path) {
        let mut slot = self.training.lock().expect("lock");
        if slot.as_ref().is_some_and(|(active, _)| active == run_dir) {
            *slot = None;
        }
    }

    /// Asks the active run, if any, to stop after its current step, which writes a checkpoint;
    /// returns whether there was one.
    pub fn stop_training(&self) -> bool {
        self.with_training(Control::cancel).is_ok()
    }

    /// Waits until no run is active, for at most `limit`; returns whether none is.
    pub fn wait_until_idle(&self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.training.lock().expect("lock").is_none() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Applies `action` to the active run's control.
    pub fn with_training(&self, action: impl FnOnce(&Control)) -> CommandResult<()> {
        match self.training.lock().expect("lock").as_ref() {
            Some((_, control)) => {
                action(control);
                Ok(())
            }
            None => Err(CommandError::new("not_found", "no training run is active")),
        }
    }

    /// Runs `change` of `run_dir` unless that folder is training, holding the training slot
    /// meanwhile so that no run can start until the change is done. The folders are compared
    /// with links and other spellings resolved: the active run reached another way is the same.
    pub fn while_idle<T>(
        &self,
        run_dir: &Path,
        change: impl FnOnce() -> CommandResult<T>,
    ) -> CommandResult<T> {
        let training = self.training.lock().expect("lock");
        if let Some((active, _)) = training.as_ref()
            && same_folder(active, run_dir)
        {
            return Err(CommandError::new(
                "busy",
                format!("{} is training; stop it first", run_dir.display()),
            ));
        }
        change()
    }

    /// A new cancellation flag for the job `id` (chosen by the UI).
    pub fn start_job(&self, id: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.jobs
            .lock()
            .expect("lock")
            .insert(id.to_owned(), flag.clone());
        flag
    }

    /// Drops a finished job's flag.
    pub fn finish_job(&self, id: &str) {
        self.jobs.lock().expect("lock").remove(id);
    }

    /// Asks job `id` to stop; unknown (already finished) jobs are ignored.
    pub fn cancel_job(&self, id: &str) {
        if let Some(flag) = self.jobs.lock().expect("lock").get(id) {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// An embedded collection by key; it becomes the most recently used, the last to be dropped
    /// (the one on screen stays while a comparison opens others).
    pub fn collection(&self, key: &str) -> CommandResult<Arc<Collection>> {
        self.collections
            .lock()
            .expect("lock")
            .get(key)
            .ok_or_else(|| {
                CommandError::new(
                    "not_found",
                    "that embedding is no longer loaded; open the run in Explore again",
                )
            })
    }

    /// The folder opened under `key`, with a model or without one.
    ///
    /// # Errors
    /// `not_found` when neither is still loaded.
    pub fn opened(&self, key: &str) -> CommandResult<Opened> {
        match self.hashed(key) {
            Some(hashed) => Ok(Opened::Hashed(hashed)),
            None => Ok(Opened::Embedded(self.collection(key)?)),
        }
    }

    /// A folder opened without a model, by key ([`HashedFolder::key`]), if it is still kept.
    pub fn hashed(&self, key: &str) -> Option<Arc<HashedFolder>> {
        self.hashed.lock().expect("lock").get(key)
    }

    /// Keeps `folder` under `key`, dropping the least recently used beyond [`KEPT_HASHED`].
    pub fn store_hashed(&self, key: String, folder: Arc<HashedFolder>) {
        self.hashed.lock().expect("lock").insert(key, folder);
    }

    /// Keeps `collection` under `key`, dropping the least recently used beyond
    /// [`KEPT_COLLECTIONS`].
    pub fn store_collection(&self, key: String, collection: Arc<Collection>) {
        self.collections
            .lock()
            .expect("lock")
            .insert(key, collection);
    }
}

/// At most `kept` values by key, the least recently used dropped first.
struct Recent<T> {
    kept: usize,
    /// Least recently used first.
    entries: Vec<(String, Arc<T>)>,
}

impl<T> Recent<T> {
    fn new(kept: usize) -> Self {
        Self {
            kept,
            entries: Vec::new(),
        }
    }

    /// The value of `key`, now the most recently used.
    fn get(&mut self, key: &str) -> Option<Arc<T>> {
        let at = self.entries.iter().position(|(stored, _)| stored == key)?;
        let used = self.entries.remove(at);
        let value = used.1.clone();
        self.entries.push(used);
        Some(value)
    }

    /// Keeps `value` under `key` as the most recently used, dropping the least recently used
    /// beyond `kept`.
    fn insert(&mut self, key: String, value: Arc<T>) {
        self.entries.retain(|(stored, _)| *stored != key);
        self.entries.push((key, value));
        let excess = self.entries.len().saturating_sub(self.kept);
        self.entries.drain(..excess);
    }
}

/// Whether `a` and `b` name the same folder, through links and `..` too.
fn same_folder(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state whose data and caches live in `dir`.
    fn in_folder(dir: &Path) -> AppState {
        AppState::new(
            dir,
            PixelCache::at(dir.join("cache")),
            ResolvedStore::at(dir.join("resolved-duplicates")),
            false,
            false,
        )
    }

    #[test]
    fn only_files_below_chosen_folders_are_allowed() {
        let data = tempfile::tempdir().unwrap();
        let chosen = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        for dir in [&chosen, &other] {
            std::fs::write(dir.path().join("a.png"), b"x").unwrap();
        }
        let state = in_folder(data.path());
        assert!(!state.is_allowed(&chosen.path().join("a.png")));
        state.allow(chosen.path());
        assert!(state.is_allowed(&chosen.path().join("a.png")));
        assert!(!state.is_allowed(&other.path().join("a.png")));
        assert!(!state.is_allowed(&chosen.path().join("../a.png")));
    }

    #[test]
    fn only_one_training_run_at_a_time() {
        let data = tempfile::tempdir().unwrap();
        let state = in_folder(data.path());
        assert_eq!(state.with_training(|_| {}).unwrap_err().code, "not_found");
        let run = data.path().join("runs/first");
        state.begin_training(&run, || ((), Arc::default())).unwrap();
        let idle = |dir: &Path| state.while_idle(dir, || Ok(()));
        assert_eq!(idle(&run).unwrap_err().code, "busy");
        assert!(idle(&data.path().join("runs/other")).is_ok());
        let mut started_again = false;
        let refused = state.begin_training(&run, || {
            started_again = true;
            ((), Arc::default())
        });
        assert_eq!(refused.unwrap_err().code, "busy");
        assert!(!started_again, "a refused run must not start");
        state.with_training(Control::pause).unwrap();
        state.end_training(&data.path().join("runs/other"));
        assert_eq!(
            idle(&run).unwrap_err().code,
            "busy",
            "the end of another run leaves this one in place"
        );
        state.end_training(&run);
        assert!(idle(&run).is_ok());
        state.begin_training(&run, || ((), Arc::default())).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_active_run_reached_through_a_link_or_dots_is_refused_and_held_while_changed() {
        let data = tempfile::tempdir().unwrap();
        let state = in_folder(data.path());
        let run = data.path().join("runs/first");
        std::fs::create_dir_all(&run).unwrap();
        let link = data.path().join("shortcut");
        std::os::unix::fs::symlink(&run, &link).unwrap();
        state.begin_training(&run, || ((), Arc::default())).unwrap();
        for other_spelling in [link.clone(), data.path().join("runs/../runs/first")] {
            let refused = state.while_idle(&other_spelling, || Ok(()));
            assert_eq!(
                refused.unwrap_err().code,
                "busy",
                "{}",
                other_spelling.display()
            );
        }
        state.end_training(&run);
        // While a change runs, the slot is held: a run cannot start in between.
        let started = state.while_idle(&link, || Ok(state.training.try_lock().is_err()));
        assert!(
            started.unwrap(),
            "the training slot is held during the change"
        );
    }

    /// A script in the web view names another file as a served device's token, one the engine
    /// would accept: the backend never uses it, and reaches a server only with the token
    /// "Another machine…" kept for that server's address.
    #[test]
    fn a_served_device_gets_the_kept_token_never_the_file_the_web_view_names() {
        let data = tempfile::tempdir().unwrap();
        let state = in_folder(data.path());
        let elsewhere = tempfile::tempdir().unwrap();
        let named_file = elsewhere.path().join("someone-elses.token");
        remote::write_token(&named_file, &remote::Secret::generate(None), false).unwrap();
        let named = |address: &str| {
            DeviceChoice::Remote(remote::RemoteTarget {
                address: address.to_owned(),
                token_file: Some(named_file.clone()),
            })
        };

        let refused = state
            .with_kept_token(named("ws://attacker:80"))
            .unwrap_err();
        assert_eq!(refused.code, "device");
        assert!(
            refused
                .message
                .contains("ws://attacker:80 needs the server's token"),
            "{refused}"
        );
        assert!(!refused.message.contains("someone-elses"), "{refused}");

        // The person connected to this server once: its token is kept in the app's data folder.
        let kept = remote::kept_token_file(&state.servers, "ws://gpu-box:7800").unwrap();
        let kept_file = kept.token_file.clone().unwrap();
        assert!(kept_file.starts_with(data.path().join("servers")));
        remote::write_token(&kept_file, &remote::Secret::generate(None), false).unwrap();
        assert_eq!(
            state.with_kept_token(named("ws://gpu-box")).unwrap(),
            DeviceChoice::Remote(kept),
            "the kept file, and the address as the engine writes it"
        );

        let address = state.with_kept_token(named("http://gpu-box")).unwrap_err();
        assert!(
            address.message.contains("is not a server's address"),
            "{address}"
        );
        for local in [
            DeviceChoice::Auto,
            DeviceChoice::Cpu,
            DeviceChoice::Adapter(1),
        ] {
            assert_eq!(state.with_kept_token(local.clone()).unwrap(), local);
        }
    }

    #[test]
    fn the_collection_in_use_is_the_last_to_be_dropped() {
        let mut kept = Recent::new(3);
        for key in ["viewed", "b", "c"] {
            kept.insert(key.to_owned(), Arc::new(key.len()));
        }
        // The person works in the first one while a comparison opens two more.
        assert!(kept.get("viewed").is_some());
        kept.insert("d".to_owned(), Arc::new(0));
        kept.insert("e".to_owned(), Arc::new(0));
        assert!(kept.get("viewed").is_some());
        assert!(kept.get("b").is_none() && kept.get("c").is_none());
        assert_eq!(kept.entries.len(), 3);
    }

    #[test]
    fn closing_stops_the_active_run_and_waits_for_its_end() {
        let data = tempfile::tempdir().unwrap();
        let state = Arc::new(in_folder(data.path()));
        assert!(!state.stop_training(), "nothing to stop");
        assert!(state.wait_until_idle(std::time::Duration::ZERO));
        let run = data.path().join("runs/first");
        let control: Arc<Control> = Arc::default();
        state
            .begin_training(&run, || ((), control.clone()))
            .unwrap();
        assert!(!state.wait_until_idle(std::time::Duration::from_millis(100)));
        assert!(state.stop_training());
        assert!(control.is_canceled());
        // The worker ends a moment later, as a run finishing its step and checkpoint does.
        let ending = {
            let (state, run) = (state.clone(), run.clone());
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                state.end_training(&run);
            })
        };
        assert!(state.wait_until_idle(std::time::Duration::from_secs(10)));
        ending.join().unwrap();
    }
}
