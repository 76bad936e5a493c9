//! The optional item catalog: titles, categories, prices and availability.
//!
//! A CSV with header `item_id,title,category,price,available`; only `item_id`
//! is required, columns may come in any order. A catalog is small and made by
//! hand, so any bad row is an error naming the file and line.

use crate::ingest::IngestError;
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
    pub fn get(&self, item_id: &str) -> Option<&CatalogEntry> {
        self.entries.get(item_id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" | "y" => Some(true),
        "false" | "0" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// Reads a catalog file.
pub fn read_catalog(path: &Path) -> Result<Catalog, IngestError> {
    let file = std::fs::File::open(path).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_catalog_from_reader(file, path)
}

/// Reads a catalog from any reader; `source` names it in errors.
pub fn read_catalog_from_reader(
    reader: impl std::io::Read,
    source: &Path,
) -> Result<Catalog, IngestError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let csv_err = |e: csv::Error| IngestError::Csv {
        path: source.to_path_buf(),
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    };
    let headers: Vec<String> = rdr
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
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
    for record in rdr.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line());
        let bad = |field: &'static str, value: &str, reason| IngestError::BadRow {
            path: source.to_path_buf(),
            line,
            field,
            value: value.to_string(),
            reason,
        };
        if record.len() != headers.len() {
            return Err(bad(
                "row",
                &format!("{} columns, the header has {}", record.len(), headers.len()),
                crate::ingest::RejectReason::WrongColumnCount,
            ));
        }
        let text = |c: Option<usize>| {
            c.map(|c| record[c].trim())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let id = record[id_col].trim();
        if id.is_empty() {
            return Err(bad("item_id", id, crate::ingest::RejectReason::MissingItem));
        }
        let price = match text(price) {
            None => None,
            Some(s) => Some(
                s.parse::<f32>()
                    .ok()
                    .filter(|p| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| bad("price", &s, crate::ingest::RejectReason::BadPrice))?,
            ),
        };
        let available = match available {
            None => true,
            Some(c) => parse_bool(&record[c]).ok_or_else(|| IngestError::Csv {
                path: source.to_path_buf(),
                line,
                message: format!(
                    "field 'available': {:?} is not true/false, 1/0 or yes/no",
                    &record[c]
                ),
            })?,
        };
        let entry = CatalogEntry {
            title: text(title),
            category: text(category),
            price,
            available,
        };
        if catalog.entries.insert(id.to_string(), entry).is_some() {
            return Err(IngestError::Csv {
                path: source.to_path_buf(),
                line,
                message: format!("item_id {id:?} appears twice"),
            });
        }
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
    fn errors_name_line() {
        let e = read("item_id,price\na,1\nb,-2\n").unwrap_err().to_string();
        assert!(e.starts_with("cat.csv:3: field 'price'"), "{e}");
        let e = read("item_id,available\na,maybe\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cat.csv:2:"), "{e}");
        let e = read("item_id\na\na\n").unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        assert!(read("title\nx\n").is_err());
    }

    #[test]
    fn bundled_catalog_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/online_retail_catalog.csv");
        let c = read_catalog(&path).unwrap();
        assert!(c.len() > 3_000);
        assert!(!c.get("POST").unwrap().available);
    }
}
