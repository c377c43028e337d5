//! The files Explore writes for the person: duplicate groups (CSV, JSON) and cluster assignments
//! (CSV). Written atomically, so a failed export leaves any previous file intact; the images
//! themselves are never touched.

use std::path::{Path, PathBuf};

use crate::data::ImageEntry;
use crate::support::atomic_file;
use crate::support::csv_text::CsvText;
use crate::support::paths;

use super::{Clustering, DuplicateGroup, Duplicates};
use crate::support::error_kind::ErrorKind;

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", .path.display())]
pub struct TableError {
    /// The file.
    pub path: PathBuf,
    /// What the operating system said.
    pub source: std::io::Error,
}

impl TableError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Files
    }
}

fn path_field(entries: &[ImageEntry], row: usize) -> String {
    paths::to_text(&entries[row].path).into_owned()
}

/// `group,path,similarity,stage,hash_bits,keep,resolved`: one line per member, groups numbered
/// from 1 in their order, the similarity to the group's first member, the stage linking it to
/// the first, `keep` true for the copy to keep, `resolved` true for every member of a group a
/// person marked resolved.
pub fn duplicates_csv(groups: &[DuplicateGroup], entries: &[ImageEntry]) -> String {
    let mut csv = CsvText::new(&[
        "group",
        "path",
        "similarity",
        "stage",
        "hash_bits",
        "keep",
        "resolved",
    ]);
    for (g, group) in groups.iter().enumerate() {
        let keep = group.keep.as_ref().map(|keep| keep.row);
        for (&row, similarity) in group.members.iter().zip(&group.similarities) {
            // The stage that links each member to the group's first (none for the first).
            let link = group.link_to_first(row);
            csv.record(&[
                (g + 1).to_string(),
                path_field(entries, row),
                format!("{similarity:.4}"),
                link.map_or(String::new(), |link| link.stage.name().to_owned()),
                link.and_then(|link| link.hash_bits)
                    .map_or(String::new(), |bits| bits.to_string()),
                (keep == Some(row)).to_string(),
                group.resolved.to_string(),
            ]);
        }
    }
    csv.into_string()
}

/// `{"threshold": t, "hash_bits": b, "groups": [[path, …], …], "links": [[{"a", "b", "stage",
/// "hash_bits", "cosine"}, …], …]}`, members in group order, links by path (each member's link
/// to the group's first, in member order), `"keep": [{"path", "reason"} | null, …]` (the copy to
/// keep of each group) and `"resolved": [bool, …]` (groups a person marked resolved);
/// `threshold` is null where the hashes alone linked images.
pub fn duplicates_json(found: &Duplicates, entries: &[ImageEntry]) -> String {
    let Duplicates {
        groups,
        threshold,
        hash_bits,
    } = found;
    let members: Vec<Vec<String>> = groups
        .iter()
        .map(|group| {
            group
                .members
                .iter()
                .map(|&row| path_field(entries, row))
                .collect()
        })
        .collect();
    // Numbers as they read in f32 (0.97, not 0.9700000286102295).
    let short = |value: f32| -> f64 { value.to_string().parse().unwrap_or(f64::from(value)) };
    let links: Vec<Vec<serde_json::Value>> = groups
        .iter()
        .map(|group| {
            group
                .links
                .iter()
                .map(|link| {
                    serde_json::json!({
                        "a": path_field(entries, link.a),
                        "b": path_field(entries, link.b),
                        "stage": link.stage.name(),
                        "hash_bits": link.hash_bits,
                        "cosine": link.cosine.map(short),
                    })
                })
                .collect()
        })
        .collect();
    let keep: Vec<serde_json::Value> = groups
        .iter()
        .map(|group| match &group.keep {
            Some(keep) => serde_json::json!({
                "path": path_field(entries, keep.row),
                "reason": keep.reason,
            }),
            None => serde_json::Value::Null,
        })
        .collect();
    let resolved: Vec<bool> = groups.iter().map(|group| group.resolved).collect();
    serde_json::json!({
        "threshold": threshold.map(short),
        "hash_bits": hash_bits,
        "groups": members,
        "links": links,
        "keep": keep,
        "resolved": resolved,
    })
    .to_string()
}

/// `path,cluster,similarity_to_center`: every image in row order, clusters numbered from 1
/// (largest first).
pub fn clusters_csv(clustering: &Clustering, entries: &[ImageEntry]) -> String {
    let mut similarity = vec![0.0f32; entries.len()];
    for cluster in &clustering.clusters {
        for (&row, &s) in cluster.members.iter().zip(&cluster.similarities) {
            similarity[row] = s;
        }
    }
    let mut csv = CsvText::new(&["path", "cluster", "similarity_to_center"]);
    for (row, &cluster) in clustering.assignment.iter().enumerate() {
        csv.record(&[
            path_field(entries, row),
            (cluster + 1).to_string(),
            format!("{:.4}", similarity[row]),
        ]);
    }
    csv.into_string()
}

/// Writes `text` to `path` atomically.
///
/// # Errors
/// [`TableError`] naming the file.
pub fn write(path: &Path, text: &str) -> Result<(), TableError> {
    atomic_file::write(path, text.as_bytes()).map_err(|source| TableError {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::FileStamp;

    fn entry(path: &str) -> ImageEntry {
        ImageEntry {
            path: PathBuf::from(path),
            label: None,
            stamp: FileStamp::default(),
        }
    }

    #[test]
    fn groups_and_clusters_become_csv_with_quoted_names() {
        let entries = [entry("a.jpg"), entry("b, \"old\".jpg"), entry("c.png")];
        let groups = [DuplicateGroup {
            members: vec![1, 0],
            similarities: vec![1.0, 0.97],
            weakest_link: 0.97,
            links: vec![crate::explore::DuplicateLink {
                a: 0,
                b: 1,
                stage: crate::explore::Stage::Both,
                hash_bits: Some(3),
                cosine: Some(0.97),
            }],
            keep: Some(crate::explore::KeepSuggestion {
                row: 0,
                reason: "most pixels (64×64)".to_owned(),
            }),
            resolved: true,
        }];
        assert_eq!(
            duplicates_csv(&groups, &entries),
            "group,path,similarity,stage,hash_bits,keep,resolved\n1,\"b, \"\"old\"\".jpg\",1.0000,,,false,true\n1,a.jpg,0.9700,both,3,true,true\n"
        );
        let found = Duplicates {
            groups: groups.to_vec(),
            threshold: Some(0.9),
            hash_bits: 6,
        };
        let json: serde_json::Value =
            serde_json::from_str(&duplicates_json(&found, &entries)).unwrap();
        assert_eq!(json["groups"][0][1], "a.jpg");
        assert_eq!(json["threshold"].as_f64(), Some(0.9));
        assert_eq!(json["hash_bits"], 6);
        assert_eq!(json["links"][0][0]["stage"], "both");
        assert_eq!(json["links"][0][0]["cosine"].as_f64(), Some(0.97));
        assert_eq!(json["keep"][0]["path"], "a.jpg");
        assert_eq!(json["keep"][0]["reason"], "most pixels (64×64)");
        assert_eq!(json["resolved"][0], true);
        let clustering = Clustering {
            clusters: vec![
                crate::explore::Cluster {
                    members: vec![0, 2],
                    similarities: vec![0.9, 0.8],
                },
                crate::explore::Cluster {
                    members: vec![1],
                    similarities: vec![1.0],
                },
            ],
            assignment: vec![0, 1, 0],
        };
        let csv = clusters_csv(&clustering, &entries);
        assert_eq!(csv.lines().nth(3), Some("c.png,1,0.8000"));
    }
}
