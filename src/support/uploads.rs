//! A tally of the bytes a thread uploads to the device, for the benchmark's step budget: every
//! upload of the training step passes its data through [`counted`] on the way to
//! `Tensor::from_data`, or its size through [`count`]. Per thread, because the step is recorded on one (the training thread),
//! and the benchmark reads the difference over an epoch there.

use std::cell::Cell;

use burn::tensor::TensorData;

thread_local! {
    static UPLOADED: Cell<u64> = const { Cell::new(0) };
}

/// `data`, its bytes added to this thread's tally.
pub(crate) fn counted(data: TensorData) -> TensorData {
    count(data.as_bytes().len() as u64);
    data
}

/// Adds `bytes` uploaded another way (Spreadout's own kernels' buffers) to this thread's tally.
pub(crate) fn count(bytes: u64) {
    UPLOADED.with(|tally| tally.set(tally.get() + bytes));
}

/// Bytes this thread has passed through [`counted`] so far.
pub(crate) fn uploaded() -> u64 {
    UPLOADED.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_counts_its_own_bytes() {
        let before = uploaded();
        let _ = counted(TensorData::new(vec![0u8; 12], [12]));
        let _ = counted(TensorData::new(vec![0.0f32; 4], [4]));
        assert_eq!(uploaded() - before, 28);
        let elsewhere = std::thread::spawn(uploaded).join().unwrap();
        assert_eq!(elsewhere, 0);
    }
}
