//! A 2-D map of an embedding by its two principal components: instant, and the start of UMAP's
//! layout.

use rayon::prelude::*;

use super::{Embeddings, EvalError};

/// Projects every row onto the two principal components of the set (centred), for a 2-D map of
/// the embedding. Power iteration with deflation on the `dim × dim` covariance: exact enough for a
/// picture and O(n·dim²) instead of a full eigendecomposition. Sign is fixed so the largest
/// coordinate of each component is positive, keeping maps of successive epochs comparable.
pub fn pca_2d(features: Embeddings) -> Result<Vec<[f32; 2]>, EvalError> {
    if features.is_empty() {
        return Err(EvalError::Empty("features"));
    }
    let (n, dim) = (features.len(), features.dim());
    let mut mean = vec![0f64; dim];
    for i in 0..n {
        for (m, &v) in mean.iter_mut().zip(features.row(i)) {
            *m += f64::from(v) / n as f64;
        }
    }
    let covariance = (0..n)
        .into_par_iter()
        .fold(
            || vec![0f64; dim * dim],
            |mut acc, i| {
                let centered: Vec<f64> = features
                    .row(i)
                    .iter()
                    .zip(&mean)
                    .map(|(&v, m)| f64::from(v) - m)
                    .collect();
                for (a, &x) in centered.iter().enumerate() {
                    for (b, &y) in centered.iter().enumerate() {
                        acc[a * dim + b] += x * y;
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; dim * dim],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let mut deflated = covariance;
    let mut components: Vec<Vec<f64>> = Vec::with_capacity(2);
    for c in 0..2 {
        // A fixed, non-symmetric start avoids starting orthogonal to the top component.
        let mut vector: Vec<f64> = (0..dim).map(|i| 1.0 + (i + c) as f64 * 0.01).collect();
        let mut eigenvalue = 0.0;
        for _ in 0..300 {
            let next: Vec<f64> = (0..dim)
                .map(|a| (0..dim).map(|b| deflated[a * dim + b] * vector[b]).sum())
                .collect();
            let norm = next.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm < 1e-30 {
                break;
            }
            eigenvalue = norm;
            vector = next.into_iter().map(|v| v / norm).collect();
        }
        let largest =
            vector.iter().copied().fold(
                0.0f64,
                |best, v| if v.abs() > best.abs() { v } else { best },
            );
        if largest < 0.0 {
            vector.iter_mut().for_each(|v| *v = -*v);
        }
        for a in 0..dim {
            for b in 0..dim {
                deflated[a * dim + b] -= eigenvalue * vector[a] * vector[b];
            }
        }
        components.push(vector);
    }
    Ok((0..n)
        .map(|i| {
            let row = features.row(i);
            let project = |component: &[f64]| {
                row.iter()
                    .zip(&mean)
                    .zip(component)
                    .map(|((&v, m), c)| (f64::from(v) - m) * c)
                    .sum::<f64>() as f32
            };
            [project(&components[0]), project(&components[1])]
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_directions_of_largest_spread() {
        // Points spread widely along (1, 1, 0) and a little along (0, 0, 1), uncorrelated (the
        // +,-,-,+ pattern of z cancels against every four consecutive t).
        let mut rows = Vec::new();
        for i in 0..40 {
            let t = i as f32 - 19.5;
            let z: f32 = if i % 4 == 0 || i % 4 == 3 { 1.0 } else { -1.0 };
            rows.extend([t, t, z]);
        }
        let map = pca_2d(Embeddings::new(&rows, 3).unwrap()).unwrap();
        for (i, point) in map.iter().enumerate() {
            let t = i as f32 - 19.5;
            let z: f32 = if i % 4 == 0 || i % 4 == 3 { 1.0 } else { -1.0 };
            assert!((point[0] - t * 2f32.sqrt()).abs() < 1e-3, "{point:?}");
            assert!((point[1].abs() - z.abs()).abs() < 1e-3, "{point:?}");
        }
    }
}
