//! Evaluation of a learned embedding (paper §4).
//!
//! * similarity search, host and device: the `k` nearest rows, every pair above a threshold
//!   (`search`, over the blocked kernel of `scan`),
//! * weighted kNN classification (Wu et al. 2018, the protocol the paper reports on CIFAR-10/STL-10)
//!   and the rule for which test images it classifies (`knn`),
//! * Recall@K (`recall`) and NMI with k-means (`cluster`): the fine-grained retrieval/clustering
//!   protocol,
//! * the positive/negative cosine-similarity distributions of Fig. 5 (`distributions`),
//! * a linear classifier on frozen embeddings (Table 2's "Linear"; `linear`),
//! * 2-D maps: PCA (`pca`), and UMAP (`umap`).
//!
//! Everything here is a function over embeddings that are already L2-normalised (the
//! [`Embeddings`] view), so a dot product *is* the cosine similarity. There is no model code here;
//! the only tensors are the device searches' matrix products.
//!
//! Host nearest-neighbour work goes through one blocked, parallel scan ([`top_k`], k-means and the
//! Fig. 5 distributions share it), which is what makes 10 000 queries against 50 000 rows a matter
//! of seconds on two cores. Results are deterministic: every dot product is summed in dimension
//! order whatever the thread count, and every random choice comes from a seeded ChaCha stream.
//! (CPUs with and without fused multiply-add may still differ in the last bit of a score.)

mod cluster;
mod distributions;
mod embeddings;
mod error;
mod knn;
mod linear;
mod pair_index;
mod pca;
mod recall;
mod scan;
mod search;
#[cfg(test)]
mod testing;
mod umap;

pub use cluster::{clustering_iterations, clustering_nmi, kmeans, nmi};
pub use distributions::{
    Histogram, PairKind, SimilarityDistributions, labeled_similarity_distributions,
    merge_distributions, random_pair_histogram, similarity_distributions_per_label,
    view_similarity_distributions,
};
pub use embeddings::{Embeddings, random_unit_rows};
pub use error::EvalError;
pub use knn::{AlignedLabels, accuracy, align_labels, knn_accuracy, knn_predict, knn_vote};
pub use linear::{LinearClassifier, LinearSettings, linear_accuracy};
pub use pair_index::{INDEXED_FROM, IndexShape, library_like_rows, pairs_above_indexed};
pub use pca::pca_2d;
pub use recall::recall_at_k;
pub use search::{
    Neighbor, PAIRS_PER_ROW, ViewProduct, best_of, nearest, pairs_above, pairs_above_best_of,
    top_k, top_k_of_tensors, top_k_on, top_k_skipping,
};
pub use umap::umap_2d;
