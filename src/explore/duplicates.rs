//! Near-duplicates: groups of images in which every two are linked by one of two stages, each at
//! the threshold its own distributions on the folder suggest ([`super::threshold`]). The hash
//! stage ([`super::hash_stage`]) needs no model and finds re-encoded, resized, brightened and
//! noisy copies; the embedding, trained to be invariant to crops, colour changes and flips while
//! spreading distinct images apart, finds what a hash cannot (crops, heavier edits) once a model
//! has learned enough. Every link of a group says which stage found it, with what score.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use rayon::prelude::*;

use super::best_copy::{self, CopyFacts, KeepSuggestion};
use super::hash_stage::{self, HashStage, similarity};
use super::threshold::ThresholdSuggestion;
use super::{Collection, ExploreError, Readiness, embedding_stage};
use crate::data::{self, DataError, ImageEntry, ImageSet, ImageSource, PixelCache, SkippedFile};
use crate::eval::{self, EvalError, ViewProduct, best_of};

/// A group of near-duplicate images.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct DuplicateGroup {
    /// Row indices, the most central member first (highest total similarity to the others),
    /// then by similarity to it.
    pub members: Vec<usize>,
    /// Similarity of each member to the first (1 for the first itself): the embeddings' cosine
    /// where there is a model, else the hashes' ([`similarity`]).
    pub similarities: Vec<f32>,
    /// The lowest similarity of two members, on the same scale.
    pub weakest_link: f32,
    /// Each member's link to the first (every member but the first, in order), with the stage
    /// that found it. Every two members are linked; these are the links the shells show.
    pub links: Vec<DuplicateLink>,
    /// The copy to keep ([`best_copy`]): the suggestion, or the person's choice once they
    /// marked the group resolved. `None` only from [`find_duplicates`], which sees no files.
    pub keep: Option<KeepSuggestion>,
    /// Whether a person marked this group (or one holding all its members) resolved
    /// ([`super::resolved`]): the shells set it aside.
    pub resolved: bool,
}

impl DuplicateGroup {
    /// The link between member `row` and the group's first member (none for the first itself).
    pub fn link_to_first(&self, row: usize) -> Option<&DuplicateLink> {
        let first = self.members[0];
        let pair = (row.min(first), row.max(first));
        self.links.iter().find(|link| (link.a, link.b) == pair)
    }
}

/// Two members of a group and what says they are copies.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct DuplicateLink {
    /// Row indices, `a < b`.
    pub a: usize,
    pub b: usize,
    /// The stage that found the pair.
    pub stage: Stage,
    /// Differing bits of their perceptual hashes (of 64); `None` when their colours rule them
    /// out as copies for the hash stage, or it was not run.
    pub hash_bits: Option<u32>,
    /// Their embeddings' score: the best cosine over the whole images and their zoomed and
    /// mirrored views (or the whole images' alone where asked); `None` without a model.
    pub cosine: Option<f32>,
}

/// Which stage of the finder linked a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The perceptual hashes, within their threshold.
    Hash,
    /// The embeddings, above their threshold.
    Embedding,
    /// Both.
    Both,
}

impl Stage {
    /// The name in tables and listings.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Hash => "hash",
            Stage::Embedding => "embedding",
            Stage::Both => "both",
        }
    }
}

/// Where the embedding stage draws its line, as the person asked: the one rule both shells
/// follow, so that the CLI and Explore find the same groups for the same choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DuplicateThreshold {
    /// The threshold the folder suggests ([`Collection::suggest_duplicate_threshold`]) where the
    /// model separates copies from neighbours ([`Collection::readiness`]); where it does not yet,
    /// the embedding is left out and the hashes alone link images.
    Suggested,
    /// This score, whether or not the model separates copies yet: the person chose it.
    Exactly(f32),
}

impl From<Option<f32>> for DuplicateThreshold {
    /// A threshold the person gave, or the suggested one where they gave none.
    fn from(threshold: Option<f32>) -> Self {
        threshold.map_or(Self::Suggested, Self::Exactly)
    }
}

/// Groups of near-duplicates with the thresholds they were found at.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicates {
    /// The groups, largest first.
    pub groups: Vec<DuplicateGroup>,
    /// The embedding's threshold; `None` where the hashes alone linked images (no model, or one
    /// that cannot separate copies yet).
    pub threshold: Option<f32>,
    /// The most differing bits of 64 two copies' hashes may have.
    pub hash_bits: u32,
}

/// The stages a duplicate search runs, each with its threshold.
#[derive(Clone, Copy)]
pub struct Stages<'a> {
    /// The view products that score a pair by the embedding ([`eval::best_of`]) and the score
    /// above which two are copies.
    pub embedding: Option<(&'a [ViewProduct<'a>], f32)>,
    /// The hashes and the most differing bits two copies may have.
    pub hash: Option<(&'a HashStage, u32)>,
}

impl Stages<'_> {
    /// Which stages link rows `a` and `b`, with their scores; `None` when neither does.
    fn link(&self, a: usize, b: usize) -> Option<DuplicateLink> {
        let cosine = self.embedding.map(|(products, _)| best_of(products, a, b));
        let hash_bits = self.hash.and_then(|(hashes, _)| hashes.distance(a, b));
        let by_embedding = self
            .embedding
            .is_some_and(|(_, threshold)| cosine.is_some_and(|c| c > threshold));
        let by_hash = self
            .hash
            .is_some_and(|(_, max_bits)| hash_bits.is_some_and(|bits| bits <= max_bits));
        let stage = match (by_hash, by_embedding) {
            (true, true) => Stage::Both,
            (true, false) => Stage::Hash,
            (false, true) => Stage::Embedding,
            (false, false) => return None,
        };
        let (a, b) = (a.min(b), a.max(b));
        Some(DuplicateLink {
            a,
            b,
            stage,
            hash_bits,
            cosine,
        })
    }

    /// How alike rows `a` and `b` are on the groups' scale: the cosine where there is a model,
    /// else the hashes' similarity (0 where colours rule the pair out).
    fn similarity(&self, a: usize, b: usize) -> f32 {
        match (self.embedding, self.hash) {
            (Some((products, _)), _) => best_of(products, a, b),
            (None, Some((hashes, _))) => hashes.distance(a, b).map_or(0.0, similarity),
            (None, None) => 0.0,
        }
    }
}

/// Groups in which every two rows are linked: complete-linkage agglomeration of the `pairs`
/// (visited from the most similar down, ties by row), where two groups merge only if `linked`
/// holds for every row of one with every row of the other. Unlike connected components, a chain
/// of distinct images, each a little like the next, never becomes one group. Groups of at least
/// two rows, each sorted; largest first, then by first row.
pub fn complete_linkage_groups(
    n: usize,
    pairs: &[(usize, usize, f32)],
    linked: impl Fn(usize, usize) -> bool,
) -> Vec<Vec<usize>> {
    let mut order: Vec<&(usize, usize, f32)> = pairs.iter().collect();
    order.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    // `group[i]` names the group of row `i`; `members[g]` lists group g (empty once merged).
    let mut group: Vec<usize> = (0..n).collect();
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    for &&(a, b, _) in &order {
        let (ga, gb) = (group[a], group[b]);
        if ga == gb {
            continue;
        }
        let all_linked = members[ga]
            .iter()
            .all(|&i| members[gb].iter().all(|&j| linked(i, j)));
        if all_linked {
            let (keep, gone) = (ga.min(gb), ga.max(gb));
            let moved = std::mem::take(&mut members[gone]);
            for &row in &moved {
                group[row] = keep;
            }
            members[keep].extend(moved);
        }
    }
    let mut groups: Vec<Vec<usize>> = members
        .into_iter()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort_unstable();
            g
        })
        .collect();
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups
}

/// Groups of rows in which every two are linked by one of `stages` ([`complete_linkage_groups`]),
/// largest first; the embedding's pairs come from [`eval::pairs_above_best_of`] on `device` (all
/// pairs) below [`eval::INDEXED_FROM`] rows and from [`eval::pairs_above_indexed`] (an inverted
/// file, each candidate scored exactly) from there, the hashes' from their multi-index search.
///
/// # Errors
/// [`EvalError::Empty`] for no rows, no stage or no view product; [`EvalError::TooManyPairs`]
/// past 50 pairs an image in either stage.
pub fn find_duplicates(
    stages: Stages<'_>,
    device: &Device,
) -> Result<Vec<DuplicateGroup>, EvalError> {
    let n = match (stages.embedding, stages.hash) {
        (Some((products, _)), _) => products
            .first()
            .ok_or(EvalError::Empty("view products"))?
            .0
            .len(),
        (None, Some((hashes, _))) => hashes.len(),
        (None, None) => return Err(EvalError::Empty("duplicate stages")),
    };
    let mut pairs = match stages.embedding {
        Some((products, threshold)) if n >= eval::INDEXED_FROM => {
            let shape = eval::IndexShape::for_rows(n);
            eval::pairs_above_indexed(products, threshold, shape, device)?
        }
        Some((products, threshold)) => eval::pairs_above_best_of(products, threshold, device)?,
        None => Vec::new(),
    };
    if let Some((hashes, max_bits)) = stages.hash {
        let known: std::collections::HashSet<(usize, usize)> = pairs
            .iter()
            .map(|&(a, b, _)| (a.min(b), a.max(b)))
            .collect();
        pairs.extend(
            hashes
                .pairs(max_bits)?
                .into_iter()
                .filter(|&(a, b, _)| !known.contains(&(a, b)))
                .map(|(a, b, _)| (a, b, stages.similarity(a, b))),
        );
    }
    let groups = complete_linkage_groups(n, &pairs, |a, b| stages.link(a, b).is_some());
    let alike = |a: usize, b: usize| stages.similarity(a, b);
    Ok(groups
        .into_par_iter()
        .map(|rows| {
            let pairs_of_group = || {
                rows.iter()
                    .enumerate()
                    .flat_map(|(k, &a)| rows[k + 1..].iter().map(move |&b| (a, b)))
            };
            let weakest_link = pairs_of_group()
                .map(|(a, b)| alike(a, b))
                .fold(f32::INFINITY, f32::min);
            // The member most similar to all others stands for the group: each member's total
            // once (a group of k costs k²/2 scores, however large).
            let totals: Vec<f32> = rows
                .iter()
                .map(|&i| rows.iter().map(|&j| alike(i, j)).sum::<f32>())
                .collect();
            let center = rows[(0..rows.len())
                .max_by(|&a, &b| totals[a].total_cmp(&totals[b]).then(rows[b].cmp(&rows[a])))
                .expect("groups have two rows or more")];
            let mut members: Vec<(usize, f32)> = rows
                .iter()
                .map(|&i| (i, if i == center { 1.0 } else { alike(center, i) }))
                .collect();
            members.sort_by(|a, b| {
                (b.0 == center)
                    .cmp(&(a.0 == center))
                    .then(b.1.total_cmp(&a.1))
                    .then(a.0.cmp(&b.0))
            });
            // Each member's link to the first, in the members' order: what the shells show and
            // export (every two members are linked, but a group of a thousand black frames
            // would carry half a million links).
            let links = members[1..]
                .iter()
                .map(|&(row, _)| {
                    stages
                        .link(center, row)
                        .expect("complete linkage links every pair")
                })
                .collect();
            DuplicateGroup {
                members: members.iter().map(|m| m.0).collect(),
                similarities: members.iter().map(|m| m.1).collect(),
                weakest_link,
                links,
                keep: None,
                resolved: false,
            }
        })
        .collect())
}

/// Sets each group's [`DuplicateGroup::keep`] to the copy [`best_copy::suggest_keep`] chooses
/// from the files' sizes, formats and dates and the sharpness of their cached pixels in `set`.
///
/// # Errors
/// [`DataError`] when a cached image cannot be read.
fn suggest_keeps(groups: &mut [DuplicateGroup], set: &ImageSet) -> Result<(), DataError> {
    groups.par_iter_mut().try_for_each(|group| {
        let facts = group
            .members
            .iter()
            .map(|&row| {
                let cached = set.image(row)?;
                Ok(CopyFacts::of(
                    &set.entries[row],
                    set.original_size(row),
                    &cached,
                ))
            })
            .collect::<Result<Vec<_>, DataError>>()?;
        let paths: Vec<&Path> = group
            .members
            .iter()
            .map(|&row| set.entries[row].path.as_path())
            .collect();
        group.keep = Some(best_copy::suggest_keep(&group.members, &paths, &facts));
        Ok(())
    })
}

impl Collection {
    /// Groups of near-duplicate images, largest first: every two members linked by the
    /// embedding (their [`super::PairScore`] above the threshold [`DuplicateThreshold`] names,
    /// computed on the device the collection was embedded on) or by the hash stage (at most
    /// `hash_bits` differing bits; by default its suggested threshold). Asking again at the same
    /// thresholds (an export of what is shown) answers from memory.
    ///
    /// # Errors
    /// [`ExploreError::Eval`] for an empty collection; [`ExploreError::Data`] when the hash
    /// stage cannot read a cached image; as [`Collection::readiness`] for
    /// [`DuplicateThreshold::Suggested`].
    pub fn duplicates(
        &self,
        threshold: DuplicateThreshold,
        hash_bits: Option<u32>,
    ) -> Result<Duplicates, ExploreError> {
        let threshold = match threshold {
            DuplicateThreshold::Exactly(threshold) => Some(threshold),
            DuplicateThreshold::Suggested if self.readiness()?.separates => {
                Some(self.suggest_duplicate_threshold()?.threshold)
            }
            DuplicateThreshold::Suggested => None,
        };
        let hash_bits = match hash_bits {
            Some(bits) => bits,
            None => self.hash_bits()?,
        };
        let groups = self
            .last_duplicates
            .get_or_try((threshold.map(f32::to_bits), hash_bits), || {
                self.search(threshold, hash_bits)
            })?;
        Ok(Duplicates {
            groups,
            threshold,
            hash_bits,
        })
    }

    /// [`find_duplicates`] by the embedding above `threshold` (none: left out) and the hashes
    /// within `hash_bits`, on the device the collection was embedded on.
    fn search(
        &self,
        threshold: Option<f32>,
        hash_bits: u32,
    ) -> Result<Vec<DuplicateGroup>, ExploreError> {
        let device = self
            .model
            .net
            .devices()
            .first()
            .cloned()
            .unwrap_or_default();
        let hashes = self.hash_stage()?;
        let views = match threshold {
            Some(_) => self.views()?,
            None => Vec::new(),
        };
        let products = embedding_stage::view_products(&views, &views);
        let stages = Stages {
            embedding: threshold.map(|threshold| (products.as_slice(), threshold)),
            hash: Some((&hashes.0, hash_bits)),
        };
        let mut groups = find_duplicates(stages, &device)?;
        suggest_keeps(&mut groups, &self.folder.set)?;
        Ok(groups)
    }
}

/// A folder's images with their hash stage: near-duplicates without a model (the CLI's
/// `duplicates DIR`, Explore before any training).
pub struct HashedFolder {
    set: ImageSet,
    stage: HashStage,
    suggestion: ThresholdSuggestion,
}

impl HashedFolder {
    /// What identifies the hashed folder among an app's open collections: `hashes-` and xxh3-128
    /// (hex) of the path's exact bytes.
    pub fn key(folder: &Path) -> String {
        let bytes = crate::support::paths::os_bytes(folder.as_os_str());
        format!("hashes-{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
    }

    /// Brings `folder`'s cache at [`hash_stage::HASH_IMAGE_SIZE`] up to date (`progress` as
    /// [`data::load`]'s), hashes its images (or reads the hashes the cache keeps) and measures
    /// the threshold the folder suggests.
    ///
    /// # Errors
    /// [`ExploreError::Data`] naming the folder; [`ExploreError::Eval`] for fewer than two images.
    pub fn build(
        folder: &Path,
        cache: &PixelCache,
        progress: &(dyn Fn(usize, usize) -> bool + Sync),
    ) -> Result<Self, ExploreError> {
        let size = hash_stage::HASH_IMAGE_SIZE;
        let set = data::load_folder(folder, cache, size, progress)?;
        let stage = HashStage::build(&set, cache, size)?;
        let suggestion = stage.suggest_threshold(&set)?;
        Ok(Self {
            set,
            stage,
            suggestion,
        })
    }

    /// The images, in row order.
    pub fn entries(&self) -> &[ImageEntry] {
        &self.set.entries
    }

    /// Label folder names (empty without labels).
    pub fn label_names(&self) -> &[String] {
        &self.set.label_names
    }

    /// The folder the images came from.
    pub fn folder(&self) -> &Path {
        &self.set.root
    }

    /// Files that could not be used.
    pub fn skipped(&self) -> &[SkippedFile] {
        &self.set.skipped
    }

    /// The threshold the folder suggests for the hashes, on [`similarity`]'s scale.
    pub fn suggestion(&self) -> &ThresholdSuggestion {
        &self.suggestion
    }

    /// The most differing bits the suggestion allows.
    pub fn max_bits(&self) -> u32 {
        hash_stage::max_bits(self.suggestion.threshold)
    }

    /// What Explore says over a folder without a model.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            separates: false,
            note: Some(format!(
                "No model: near-duplicates come from perceptual hashes alone (re-encoded, resized, brightened and noisy copies; at most {} differing bits of 64, suggested by this folder). A trained model also finds crops and heavier edits.",
                self.max_bits()
            )),
        }
    }

    /// Groups of images whose hashes lie within `hash_bits` (by default the suggestion's),
    /// largest first.
    ///
    /// # Errors
    /// [`ExploreError::Eval`] for an empty folder.
    pub fn duplicates(&self, hash_bits: Option<u32>) -> Result<Duplicates, ExploreError> {
        let hash_bits = hash_bits.unwrap_or_else(|| self.max_bits());
        let mut groups = find_duplicates(
            Stages {
                embedding: None,
                hash: Some((&self.stage, hash_bits)),
            },
            &Device::default(),
        )?;
        suggest_keeps(&mut groups, &self.set)?;
        Ok(Duplicates {
            groups,
            threshold: None,
            hash_bits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phash::ImageHash;

    #[test]
    fn a_group_holds_only_rows_linked_to_every_other_and_a_chain_is_cut() {
        let linked_by = |pairs: &'static [(usize, usize, f32)]| {
            move |a: usize, b: usize| {
                pairs
                    .iter()
                    .any(|&(i, j, _)| (i, j) == (a.min(b), a.max(b)))
            }
        };
        // 0, 4 and 7 are all alike; 2 and 3 too.
        const CLIQUES: &[(usize, usize, f32)] =
            &[(0, 4, 0.9), (4, 7, 0.95), (2, 3, 0.99), (0, 7, 0.91)];
        let groups = complete_linkage_groups(9, CLIQUES, linked_by(CLIQUES));
        assert_eq!(groups, vec![vec![0, 4, 7], vec![2, 3]]);
        // A chain 0 ~ 1 ~ 2 ~ 3 where 0 and 2 are not alike: the closest pairs pair up and
        // connected components would have made one group of four.
        const CHAIN: &[(usize, usize, f32)] = &[(0, 1, 0.97), (1, 2, 0.95), (2, 3, 0.96)];
        let groups = complete_linkage_groups(4, CHAIN, linked_by(CHAIN));
        assert_eq!(groups, vec![vec![0, 1], vec![2, 3]]);
        assert!(complete_linkage_groups(3, &[], |_, _| false).is_empty());
    }

    #[test]
    fn duplicates_group_planted_copies_with_the_central_member_first() {
        // Rows 0 and 1 are near copies of each other, row 2 a weaker copy of row 0 and row 3
        // unrelated; 2-d unit vectors at known angles.
        let angle = |degrees: f32| {
            let r = degrees.to_radians();
            [r.cos(), r.sin()]
        };
        let rows: Vec<f32> = [0.0, 5.0, 20.0, 120.0]
            .into_iter()
            .flat_map(angle)
            .collect();
        let features = crate::eval::Embeddings::new(&rows, 2).unwrap();
        let products = [(features, features)];
        let device = crate::device::cpu().device;
        let by_embedding = |threshold| Stages {
            embedding: Some((products.as_slice(), threshold)),
            hash: None,
        };
        let groups = find_duplicates(by_embedding(0.9), &device).unwrap();
        assert_eq!(groups.len(), 1);
        let group = &groups[0];
        // 5° lies between 0° and 20°: the highest total similarity, so the centre.
        assert_eq!(group.members, vec![1, 0, 2]);
        assert_eq!(group.similarities[0], 1.0);
        assert!((group.similarities[1] - 5f32.to_radians().cos()).abs() < 1e-6);
        assert!((group.weakest_link - 20f32.to_radians().cos()).abs() < 1e-6);
        // A stricter threshold drops the weaker copy.
        assert!(
            group
                .links
                .iter()
                .all(|link| link.stage == Stage::Embedding)
        );
        // Each member's link to the first, in member order.
        let pairs: Vec<(usize, usize)> = group.links.iter().map(|l| (l.a, l.b)).collect();
        assert_eq!(pairs, vec![(0, 1), (1, 2)]);
        let strict = find_duplicates(by_embedding(0.99), &device).unwrap();
        assert_eq!(strict[0].members.len(), 2);
    }

    /// A folder of a thousand black frames (equal hashes) and a few distinct pictures: one group
    /// of the thousand, 999 links and pairs rather than half a million; at a radius that takes
    /// in every picture of a folder of distinct ones, the hash stage refuses as the embedding
    /// stage does.
    #[test]
    fn equal_hashes_make_one_group_without_a_pair_per_two_members() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // One grey of colours for all: only the structure tells these pictures apart.
        let hash = |dct: u64| ImageHash {
            dct,
            mirrored: 0,
            color: [85; crate::phash::COLOR_BYTES],
        };
        let mut hashes = vec![hash(0); 1000];
        hashes.extend((0..20).map(|_| hash(rng.random())));
        let stage = HashStage::from_hashes(hashes);
        assert_eq!(stage.pairs(6).unwrap().len(), 999);
        let device = crate::device::cpu().device;
        let stages = Stages {
            embedding: None,
            hash: Some((&stage, 6)),
        };
        let groups = find_duplicates(stages, &device).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].members.len(), 1000);
        assert_eq!(groups[0].links.len(), 999);
        assert!(groups[0].links.iter().all(|l| l.hash_bits == Some(0)));

        // At 64 bits every two pictures pair up: the 21 distinct ones here (210 pairs), but 300
        // distinct ones would be 44 850, past 50 a picture.
        assert_eq!(stage.pairs(64).unwrap().len(), 999 + 210);
        let many: Vec<ImageHash> = (0..300).map(|_| hash(rng.random())).collect();
        let refused = HashStage::from_hashes(many).pairs(64).unwrap_err();
        assert!(
            matches!(refused, EvalError::TooManyPairs { limit, .. } if limit == 50 * 300),
            "{refused:?}"
        );
    }
}
