//! The optional item catalog: titles, categories, prices and availability.
//!
//! A CSV with header `item_id,title,category,price,available`; only `item_id`
//! is required, columns may come in any order. A catalog is small and made by
//! hand, so any bad row is an error naming the file and line.

use crate::ingest::{IngestError, RejectReason};
use std::collections::HashMap;
use std::path::Path;

/// One catalog row.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub title: Option<String>,
    pub category: Option<String>,
    pub price: Option<f32>,
    /// `false` keeps the item out of every list.
    pub available: bool,
}

/// Catalog entries by item id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub entries: HashMap<String, CatalogEntry>,
}

impl Catalog {
    /// The entry of `item_id`, if the catalog has one.
    pub fn get(&self, item_id: &str) -> Option<&CatalogEntry> {
        self.entries.get(item_id)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the catalog has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `true/false`, `1/0`, `yes/no` (`y/n`), any case; empty means `true`.
fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.is_empty() {
        return Some(true);
    }
    ["true", "1", "yes", "y"]
        .iter()
        .any(|t| s.eq_ignore_ascii_case(t))
        .then_some(true)
        .or_else(|| {
            ["false", "0", "no", "n"]
                .iter()
                .any(|f| s.eq_ignore_ascii_case(f))
                .then_some(false)
        })
}

/// Reads a catalog file.
pub fn read_catalog(path: &Path) -> Result<Catalog, IngestError> {
    let file = std::fs::File::open(path).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    read_catalog_from_reader(file, path)
}

/// Reads a catalog from any reader; `source` names it in errors.
pub fn read_catalog_from_reader(
    reader: impl std::io::Read,
    source: &Path,
) -> Result<Catalog, IngestError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(crate::ingest::LineBreaks::new(reader));
    let csv_err = |e: csv::Error| IngestError::from_csv(source, e);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    if headers.is_empty() {
        return Err(IngestError::EmptyFile {
            path: source.to_path_buf(),
        });
    }
    let col = |name: &str| headers.iter().position(|h| h == name);
    let id_col = col("item_id").ok_or_else(|| IngestError::MissingColumn {
        path: source.to_path_buf(),
        field: "item_id",
        column: "item_id".into(),
        found: headers.clone(),
    })?;
    let (title, category, price, available) = (
        col("title"),
        col("category"),
        col("price"),
        col("available"),
    );
    let mut catalog = Catalog::default();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record).map_err(csv_err)? {
        // The csv crate's own line count misses lone `\r` breaks and puts a
        // row after blank lines on the first blank one.
        let line = match record.position() {
            Some(p) => rdr.get_mut().line_at(p.byte()),
            None => 0,
        };
        let bad = |field: &'static str, value: &str, reason| IngestError::BadRow {
            path: source.to_path_buf(),
            line,
            field,
            column: None,
            value: value.to_string(),
            reason,
        };
        if record.len() != headers.len() {
            return Err(bad(
                "row",
                &format!(
                    "row has {} columns, the header has {}",
                    record.len(),
                    headers.len()
                ),
                RejectReason::WrongColumnCount,
            ));
        }
        let text = |c: Option<usize>| {
            c.and_then(|c| record.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let id = text(Some(id_col)).ok_or_else(|| bad("item_id", "", RejectReason::MissingItem))?;
        let price = match text(price) {
            None => None,
            Some(s) => Some(
                s.parse::<f32>()
                    .ok()
                    .filter(|p| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| bad("price", s, RejectReason::BadPrice))?,
            ),
        };
        let available = match available.and_then(|c| record.get(c)) {
            None => true,
            Some(s) => parse_bool(s).ok_or_else(|| IngestError::InvalidValue {
                path: source.to_path_buf(),
                line,
                field: "available",
                value: s.to_string(),
                expected: "true/false, 1/0 or yes/no",
            })?,
        };
        if let Some(&first) = first_line.get(id) {
            return Err(IngestError::DuplicateItem {
                path: source.to_path_buf(),
                line,
                item_id: id.to_string(),
                first_line: first,
            });
        }
        first_line.insert(id.to_string(), line);
        let entry = CatalogEntry {
            title: text(title).map(str::to_string),
            category: text(category).map(str::to_string),
            price,
            available,
        };
        catalog.entries.insert(id.to_string(), entry);
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Catalog, IngestError> {
        read_catalog_from_reader(text.as_bytes(), Path::new("cat.csv"))
    }

    #[test]
    fn reads_partial_columns() {
        let c = read("item_id,available,title\na,no,Mug\nb,,\n").unwrap();
        assert_eq!(c.len(), 2);
        assert!(!c.get("a").unwrap().available);
        assert_eq!(c.get("a").unwrap().title.as_deref(), Some("Mug"));
        assert!(c.get("b").unwrap().available);
        assert_eq!(c.get("b").unwrap().title, None);
    }

    #[test]
    fn available_spellings() {
        for (s, v) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("Yes", true),
            (" ", true),
            ("false", false),
            ("0", false),
            ("no", false),
            ("N", false),
        ] {
            assert_eq!(parse_bool(s), Some(v), "{s:?}");
        }
        assert_eq!(parse_bool("2"), None);
        let c = read("price,item_id,category\n2.5,a,tea\n,b,\n").unwrap();
        assert_eq!(c.get("a").unwrap().price, Some(2.5));
        assert_eq!(c.get("a").unwrap().category.as_deref(), Some("tea"));
        assert_eq!(c.get("b").unwrap().price, None);
        assert!(c.get("zz").is_none());
    }

    #[test]
    fn errors_name_line() {
        let e = read("item_id,price\na,1\nb,-2\n").unwrap_err().to_string();
        assert!(e.starts_with("cat.csv:3: field 'price'"), "{e}");
        let e = read("item_id,available\na,maybe\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cat.csv:2:"), "{e}");
        assert_eq!(
            e,
            "cat.csv:2: field 'available': \"maybe\" is not true/false, 1/0 or yes/no"
        );
        let e = read("item_id\na\nb\na\n").unwrap_err();
        assert!(
            matches!(
                e,
                IngestError::DuplicateItem {
                    line: 4,
                    first_line: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "cat.csv:4: item_id \"a\" already appears on line 2"
        );
        let e = read("item_id,title\na\n").unwrap_err().to_string();
        assert_eq!(e, "cat.csv:2: row has 1 columns, the header has 2");
        let e = read("item_id,title\n ,x\n").unwrap_err().to_string();
        assert!(e.starts_with("cat.csv:2: field 'item_id'"), "{e}");
        assert!(matches!(
            read("title\nx\n"),
            Err(IngestError::MissingColumn { .. })
        ));
        assert!(matches!(read(""), Err(IngestError::EmptyFile { .. })));
        // Windows line ends and blank lines do not shift the line named.
        let e = read("item_id,price\r\na,1\r\n\r\n\r\nb,-2\r\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cat.csv:5: field 'price'"), "{e}");
    }

    #[test]
    fn bundled_catalog_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/online_retail_catalog.csv");
        let c = read_catalog(&path).unwrap();
        assert!(c.len() > 3_000);
        assert!(!c.get("POST").unwrap().available);
    }
}
