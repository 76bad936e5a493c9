//! External string ids <-> dense `u32` indices.
//!
//! Every model works on dense indices (`0..n`) so that factor matrices and
//! sparse rows can be plain arrays; the [`IdMap`] keeps the mapping back to the
//! retailer's own ids. Indices are assigned in first-seen order, which makes
//! them deterministic for a given input file.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

macro_rules! dense_index {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as a `usize`, for slicing.
            #[inline]
            pub fn idx(self) -> usize {
                self.0 as usize
            }
        }
    };
}

dense_index!(
    /// Dense index of a customer in an [`IdMap`].
    CustomerIdx
);
dense_index!(
    /// Dense index of an item in an [`IdMap`].
    ItemIdx
);
dense_index!(
    /// Dense index of an order in an [`IdMap`].
    OrderIdx
);

/// A bidirectional map between external string ids and dense indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    ids: Vec<Box<str>>,
    index: HashMap<Box<str>, u32>,
}

impl IdMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from ids in index order; duplicates keep their first index.
    pub fn from_ids<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut map = Self::new();
        for id in ids {
            map.get_or_insert(id.as_ref());
        }
        map
    }

    /// The index of `id`, inserting it with the next free index if absent.
    pub fn get_or_insert(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = u32::try_from(self.ids.len()).expect("more than u32::MAX ids");
        let boxed: Box<str> = id.into();
        self.ids.push(boxed.clone());
        self.index.insert(boxed, i);
        i
    }

    /// The index of `id`, if known.
    #[inline]
    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The external id of index `i`. Panics if out of range.
    #[inline]
    pub fn id(&self, i: u32) -> &str {
        &self.ids[i as usize]
    }

    /// Number of ids.
    #[inline]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if the map holds no id.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// All ids in index order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> {
        self.ids.iter().map(|s| &**s)
    }
}

impl Serialize for IdMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.ids.iter())
    }
}

impl<'de> Deserialize<'de> for IdMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ids: Vec<String> = Vec::deserialize(d)?;
        let map = IdMap::from_ids(&ids);
        if map.len() != ids.len() {
            return Err(serde::de::Error::custom("duplicate id in id map"));
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_order_and_roundtrip() {
        let mut m = IdMap::new();
        assert_eq!(m.get_or_insert("b"), 0);
        assert_eq!(m.get_or_insert("a"), 1);
        assert_eq!(m.get_or_insert("b"), 0);
        assert_eq!(m.id(1), "a");
        assert_eq!(m.get("zz"), None);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"["b","a"]"#);
        let back: IdMap = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<IdMap>(r#"["a","a"]"#).is_err());
    }
}
