//! The near-duplicate finder's embedding stage: how it scores a pair of images, and where the
//! folder itself says that score marks a copy.
//!
//! A pair's score is, by default, the best of five cosines over fixed test-time views
//! ([`FixedView`]): the two whole images, and each whole image against the other's zoomed-in
//! middle and against its mirror image. To a young model a cropped copy of a photo lies about as
//! close to the original as the nearest other photo does, while the original's own middle, zoomed,
//! shows what the crop shows. The threshold is measured with the same score on both of its
//! distributions (edited copies and nearest other images), so that the extra chances a pair gets
//! to look alike are paid for in the threshold, not in precision. Measured on the planted folder
//! (benchmarks/near-duplicates/README.md: the whole images alone against the views, `spreadout duplicates --whole-images`).

use rand::SeedableRng;
use rayon::prelude::*;

use super::threshold::{self, ThresholdSuggestion};
use super::{COPY_SAMPLE, COPY_STRENGTH, Collection, ExploreError, NEAREST_SAMPLE, sample_rows};
use crate::augment::FixedView;
use crate::data::{DataError, ImageSource};
use crate::embed::{self, View};
use crate::eval::{self, Embeddings, EvalError, ViewProduct, best_of};
use crate::explore::planted;

/// How the embedding stage scores a pair of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PairScore {
    /// The cosine of the two whole images' embeddings (their centre views).
    WholeImages,
    /// The best of the whole images' cosine and each whole image's against the other's zoomed
    /// and mirrored views: finds crops the whole images miss.
    #[default]
    BestOfViews,
}

impl PairScore {
    /// The views each image is embedded in, whole image first.
    fn views(self) -> &'static [FixedView] {
        match self {
            PairScore::WholeImages => &[FixedView::Center],
            PairScore::BestOfViews => &[FixedView::Center, FixedView::Zoomed, FixedView::Mirrored],
        }
    }
}

/// The products that score row `i` of `left` against row `j` of `right`, each given as the views
/// of [`PairScore::views`] in its order: the whole images alone, or also each whole image against
/// the other's zoomed and mirrored views (both ways round, so the score does not depend on which
/// image comes first). None for no views.
pub fn view_products<'a>(
    left: &[Embeddings<'a>],
    right: &[Embeddings<'a>],
) -> Vec<ViewProduct<'a>> {
    match (left, right) {
        (&[lw, lz, lm], &[rw, rz, rm]) => vec![(lw, rw), (lz, rw), (lw, rz), (lm, rw), (lw, rm)],
        _ => left
            .iter()
            .copied()
            .zip(right.iter().copied())
            .take(1)
            .collect(),
    }
}

impl Collection {
    /// The collection scoring pairs by `score` ([`Collection::build`] makes one scoring by
    /// [`PairScore::BestOfViews`]); what was measured with the other score is forgotten.
    #[must_use]
    pub fn scoring_pairs_by(mut self, score: PairScore) -> Self {
        self.pair_score = score;
        self.suggestion = super::Memo::new();
        self.readiness = super::Memo::new();
        self.last_duplicates = super::Memo::new();
        self
    }

    /// Every image's embeddings in the views its pairs are scored by ([`PairScore::views`]); the
    /// zoomed and mirrored ones are embedded on first use and kept in the cache.
    ///
    /// # Errors
    /// [`ExploreError::Data`] when a cached image cannot be read.
    pub(super) fn views(&self) -> Result<Vec<Embeddings<'_>>, ExploreError> {
        let whole = self.embeddings()?;
        if self.pair_score == PairScore::WholeImages {
            return Ok(vec![whole]);
        }
        self.embed_views(&|| true)?;
        let rows = self.view_rows.get().expect("embedded just now");
        let mut views = vec![whole];
        for rows in rows {
            views.push(Embeddings::new(rows, whole.dim())?);
        }
        Ok(views)
    }

    /// Embeds the zoomed and mirrored views where pairs are scored by them and they are not yet
    /// (otherwise done on first use of the near-duplicates), asking `keep_going` before each
    /// batch: a command's Ctrl-C stops the two passes, which take as long as opening the folder.
    ///
    /// # Errors
    /// [`ExploreError::Data`]: [`DataError::Canceled`] once `keep_going` says no, or an image
    /// the cache cannot read.
    pub fn embed_views(&self, keep_going: &(dyn Fn() -> bool + Sync)) -> Result<(), ExploreError> {
        if self.pair_score == PairScore::WholeImages || self.view_rows.get().is_some() {
            return Ok(());
        }
        let embed = |view| {
            let set = &self.folder.set;
            embed::embed_set(&self.model, set, &self.cache, view, keep_going)?
                .ok_or_else(|| DataError::Canceled(set.root.clone()))
        };
        let rows = [embed(FixedView::Zoomed)?, embed(FixedView::Mirrored)?];
        // Two threads may both have embedded them; either's rows are the same.
        self.view_rows.get_or_init(|| rows);
        Ok(())
    }

    /// The duplicate threshold this model suggests for this folder, with the two distributions
    /// it comes from ([`threshold::suggest_threshold`]), both scored as pairs are
    /// ([`PairScore`]): sampled images against an edited copy of themselves (one of JPEG,
    /// downscale, crop, brighten, noise each, at half the planted strength), and against their
    /// nearest other image. Seeded: the same answer every time.
    ///
    /// # Errors
    /// [`ExploreError::Data`] when a cached image cannot be read; [`ExploreError::Eval`] for a
    /// collection of fewer than two images.
    pub fn suggest_duplicate_threshold(&self) -> Result<ThresholdSuggestion, ExploreError> {
        self.suggestion
            .get_or_try((), || self.measure_duplicate_threshold())
    }

    fn measure_duplicate_threshold(&self) -> Result<ThresholdSuggestion, ExploreError> {
        let views = self.views()?;
        let (n, dim) = (views[0].len(), views[0].dim());
        if n < 2 {
            return Err(EvalError::TooFewRows {
                what: "a duplicate threshold",
                needed: 2,
                got: n,
            }
            .into());
        }
        let products = view_products(&views, &views);
        // Each image's nearest other image by the best of the products: the best of each
        // product's own nearest.
        let rows = sample_rows(n, NEAREST_SAMPLE);
        let skip: Vec<Option<usize>> = rows.iter().copied().map(Some).collect();
        let mut nearest = vec![f32::NEG_INFINITY; rows.len()];
        for &(left, right) in &products {
            let queries = left.gather(&rows);
            let hits = eval::top_k_skipping(Embeddings::new(&queries, dim)?, right, 1, &skip)?;
            for (best, hits) in nearest.iter_mut().zip(&hits) {
                if let Some(hit) = hits.first() {
                    *best = best.max(hit.1);
                }
            }
        }
        let copied = sample_rows(n, COPY_SAMPLE);
        let edited = copied
            .par_iter()
            .enumerate()
            .map(|(i, &row)| {
                let image = self.folder.set.image(row)?;
                let edit = planted::Edit::ALL[i % planted::Edit::ALL.len()];
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(row as u64);
                Ok(edit.edited(&image, COPY_STRENGTH, &mut rng))
            })
            .collect::<Result<Vec<_>, DataError>>()?;
        let copy_rows = self
            .pair_score
            .views()
            .iter()
            .map(|&view| {
                embed::embed_images(
                    &self.model.net,
                    edited.as_slice(),
                    self.model.config.model.image_size,
                    &self.model.config.normalization,
                    View::Fixed(view),
                    256,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let original_rows: Vec<Vec<f32>> = views.iter().map(|view| view.gather(&copied)).collect();
        let (originals, copies) = (as_views(&original_rows, dim)?, as_views(&copy_rows, dim)?);
        let between = view_products(&originals, &copies);
        let copies: Vec<f32> = (0..copied.len()).map(|i| best_of(&between, i, i)).collect();
        Ok(threshold::suggest_threshold(&copies, &nearest)?)
    }
}

/// Rows of each view as [`Embeddings`] of width `dim`.
fn as_views(rows: &[Vec<f32>], dim: usize) -> Result<Vec<Embeddings<'_>>, EvalError> {
    rows.iter().map(|rows| Embeddings::new(rows, dim)).collect()
}
