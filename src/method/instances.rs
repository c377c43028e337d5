//! Which training image each row of a method's per-instance state belongs to, and how those rows
//! follow the images when a run resumes on a changed folder.
//!
//! NPSoftmax, NCE and Exemplar keep one row per training image (a memory row, a classifier
//! output with its momentum). The checkpoint saves them with each image's key
//! (`data::scan::instance_keys`, a hash of its path), so that on a folder where photos were added,
//! removed or renamed each image that is still there gets its own row back, a new image gets a
//! row drawn as at the start of a run, and the rows of images that are gone are dropped.

use std::collections::{BTreeMap, HashMap};

use crate::tensor_files::{NamedTensor, TensorValues};

/// Name of the keys among the method's tensors in a checkpoint.
pub const KEYS: &str = "instance_keys";

/// For each image of `now`, the row of `saved` that holds it; `None` for an image new to the run.
pub fn rows_by_key(saved: &[i64], now: &[i64]) -> Vec<Option<usize>> {
    let row_of: HashMap<i64, usize> = saved
        .iter()
        .enumerate()
        .map(|(row, &key)| (key, row))
        .collect();
    now.iter().map(|key| row_of.get(key).copied()).collect()
}

/// A method's saved tensors of `saved_rows` rows each, rearranged into `rows.len()` rows: row `i`
/// is the saved row `rows[i]`, or for a new image the same row of `fresh` (the method's state
/// as a new run of this size starts it, under the same names), or zeros where a new run has no
/// such tensor yet (momentum). Every tensor is per instance, flattened or not, except NCE's
/// normalising constant `z_name`: it estimates a sum over all rows, so it is scaled by the new
/// number of rows over the old.
///
/// # Errors
/// The name of a tensor whose size is not a whole number of rows.
pub fn rearrange(
    saved: BTreeMap<String, NamedTensor>,
    saved_rows: usize,
    rows: &[Option<usize>],
    fresh: &BTreeMap<String, NamedTensor>,
    z_name: &str,
) -> Result<BTreeMap<String, NamedTensor>, String> {
    saved
        .into_iter()
        .map(|(name, tensor)| {
            let tensor = if name == z_name {
                scale(tensor, rows.len() as f32 / saved_rows.max(1) as f32)
            } else {
                rearrange_one(tensor, saved_rows, rows, fresh.get(&name))?
            };
            Ok((name, tensor))
        })
        .collect()
}

fn scale(tensor: NamedTensor, factor: f32) -> NamedTensor {
    let values = match tensor.values {
        TensorValues::F32(values) => TensorValues::F32(values.iter().map(|v| v * factor).collect()),
        other => other,
    };
    NamedTensor { values, ..tensor }
}

fn rearrange_one(
    tensor: NamedTensor,
    saved_rows: usize,
    rows: &[Option<usize>],
    fresh: Option<&NamedTensor>,
) -> Result<NamedTensor, String> {
    let not_rows = || tensor.name.clone();
    let TensorValues::F32(values) = &tensor.values else {
        return Err(not_rows());
    };
    if saved_rows == 0 || values.len() % saved_rows != 0 || tensor.shape.first() == Some(&0) {
        return Err(not_rows());
    }
    let width = values.len() / saved_rows;
    let fresh = match fresh.map(|fresh| &fresh.values) {
        Some(TensorValues::F32(fresh)) if fresh.len() == rows.len() * width => Some(fresh),
        Some(_) => return Err(not_rows()),
        None => None,
    };
    let mut out = Vec::with_capacity(rows.len() * width);
    for (row, saved) in rows.iter().enumerate() {
        match (saved, fresh) {
            (Some(saved), _) => out.extend_from_slice(&values[saved * width..(saved + 1) * width]),
            (None, Some(fresh)) => out.extend_from_slice(&fresh[row * width..(row + 1) * width]),
            (None, None) => out.extend(std::iter::repeat_n(0.0, width)),
        }
    }
    // The first dimension counts rows (or, flattened, rows × width); the others stay.
    let mut shape = tensor.shape.clone();
    shape[0] = shape[0] / saved_rows * rows.len();
    Ok(NamedTensor {
        name: tensor.name,
        shape,
        values: TensorValues::F32(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: &[usize], values: &[f32]) -> (String, NamedTensor) {
        (
            name.to_owned(),
            NamedTensor {
                name: name.to_owned(),
                shape: shape.to_vec(),
                values: TensorValues::F32(values.to_vec()),
            },
        )
    }

    #[test]
    fn rows_are_found_by_key_and_new_images_have_none() {
        assert_eq!(
            rows_by_key(&[10, 20, 30], &[30, 40, 10]),
            vec![Some(2), None, Some(0)]
        );
    }

    #[test]
    fn kept_rows_follow_their_images_new_ones_start_fresh_and_z_scales() {
        // Three saved images a, b, c; now c, a new image d, and a (b was removed).
        let rows = rows_by_key(&[1, 2, 3], &[3, 4, 1]);
        let saved = BTreeMap::from([
            tensor("memory", &[3, 2], &[1.0, 1.5, 2.0, 2.5, 3.0, 3.5]),
            tensor("momentum/bias", &[3], &[0.1, 0.2, 0.3]),
            tensor("nce_z", &[1], &[30.0]),
        ]);
        let fresh = BTreeMap::from([tensor("memory", &[3, 2], &[7.0, 7.1, 8.0, 8.1, 9.0, 9.1])]);
        let out = rearrange(saved, 3, &rows, &fresh, "nce_z").unwrap();
        let values = |name: &str| match &out[name].values {
            TensorValues::F32(values) => values.clone(),
            TensorValues::I64(_) => unreachable!(),
        };
        assert_eq!(values("memory"), vec![3.0, 3.5, 8.0, 8.1, 1.0, 1.5]);
        assert_eq!(out["memory"].shape, vec![3, 2]);
        assert_eq!(values("momentum/bias"), vec![0.3, 0.0, 0.1]);
        assert_eq!(values("nce_z"), vec![30.0]);

        // Two more images: the estimate of a sum over rows grows with them.
        let grown = rearrange(
            BTreeMap::from([tensor("nce_z", &[1], &[30.0]), tensor("w", &[6], &[1.0; 6])]),
            3,
            &rows_by_key(&[1, 2, 3], &[1, 2, 3, 4, 5]),
            &BTreeMap::new(),
            "nce_z",
        )
        .unwrap();
        assert_eq!(grown["nce_z"].values, TensorValues::F32(vec![50.0]));
        assert_eq!(
            grown["w"].shape,
            vec![10],
            "a flattened tensor keeps its width per row"
        );
    }

    #[test]
    fn a_tensor_that_is_not_whole_rows_is_named() {
        let saved = BTreeMap::from([tensor("odd", &[5], &[0.0; 5])]);
        let refused = rearrange(saved, 3, &[Some(0)], &BTreeMap::new(), "nce_z").unwrap_err();
        assert_eq!(refused, "odd");
    }
}
