//! Turning a caught panic into words. Every layer that runs work on its own threads (image
//! decoding, the training worker, the app's commands) catches panics and reports them as errors;
//! this module is the one place that reads a panic's payload, so none of them depends on another
//! for it.

/// The text a panic was raised with (`panic!("…")` payloads are a `String` or a `&str`).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}
