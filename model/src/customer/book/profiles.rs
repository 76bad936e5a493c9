//! `customer_profiles.bin`: one fixed-size little-endian record per
//! customer, read in place from the mapped file.
//!
//! ```text
//! header   magic "ENCPRF\0\x01", u64 customers, u64 record bytes (128),
//!          u64 table bytes
//! table    JSON {"segments": [...], "behaviour_segments": [...]}: the RFM
//!          segment and behavioural segment names the records index,
//!          padded with spaces to a multiple of 8 bytes
//! records  one per customer index, 128 bytes each:
//!   0  u32 flags: 1 profile present, 2 spend complete, then one bit per
//!      optional figure present (4 p_alive, 8 churn_risk, 16 expected 30 d,
//!      32 expected 90 d, 64 predicted next purchase, 128 clv,
//!      256 buy within 30 d, 512 behaviour segment)
//!   4  u32 orders            8  u32 occasions
//!   12 u8 r, f, m, stage (0 new, 1 active, 2 dormant, 3 at risk, 4 lost)
//!   16 u16 segment (index in the table)   18 u16 behaviour segment
//!   20 4 zero bytes
//!   24 i64 first purchase    32 i64 last purchase
//!   40 f64 total spend       48 f64 average order value
//!   56 f64 recency days      64 f64 typical gap days
//!   72 f64 p_alive           80 f64 churn risk
//!   88 f64 expected 30 d     96 f64 expected 90 d
//!   104 i64 predicted next purchase
//!   112 f64 clv              120 f64 buy within 30 d probability
//! ```
//!
//! An absent figure is stored as zero with its flag clear; a customer
//! without a profile is a record of zeros. Like the JSON this file replaced,
//! an optional figure that is not finite is stored as absent.
//!
//! # Implementation notes
//! [`ProfileTable::open`] checks the header's counts against the file's
//! length and every record's flags, indices and stage once, so that reading
//! a record later ([`ProfileTable::get`]) cannot fail. Records are read with
//! `from_le_bytes` per field: a record is a few loads, and no alignment is
//! assumed.

use super::CustomerProfile;
use crate::customer::lifecycle::Stage;
use encore_data::mapped::Mapping;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"ENCPRF\0\x01";
/// Bytes of one record.
pub const RECORD: usize = 128;
const HEADER: usize = 32;

const PRESENT: u32 = 1;
const SPEND_COMPLETE: u32 = 2;
const P_ALIVE: u32 = 4;
const CHURN: u32 = 8;
const E30: u32 = 16;
const E90: u32 = 32;
const NEXT: u32 = 64;
const CLV: u32 = 128;
const BUY30: u32 = 256;
const BEHAVIOUR: u32 = 512;
const KNOWN_FLAGS: u32 = 1023;

const STAGES: [Stage; 5] = [
    Stage::New,
    Stage::Active,
    Stage::Dormant,
    Stage::AtRisk,
    Stage::Lost,
];

/// The names the records index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Table {
    segments: Vec<String>,
    behaviour_segments: Vec<String>,
}

impl Table {
    fn index(names: &mut Vec<String>, name: &str) -> std::io::Result<u16> {
        let at = match names.iter().position(|n| n == name) {
            Some(at) => at,
            None => {
                names.push(name.to_string());
                names.len() - 1
            }
        };
        // 0xffff is never an index (it would be ambiguous with nothing).
        u16::try_from(at)
            .ok()
            .filter(|&i| i < u16::MAX)
            .ok_or_else(|| std::io::Error::other("more than 65,534 distinct segment names"))
    }
}

/// Streams the profiles `each` visits (every customer index in order,
/// `None` for a customer without one) into `w` in the layout of the module
/// docs. `each` is called twice: once for the name table, once for the
/// records; a record is encoded at a time.
pub fn write_profiles(
    w: &mut impl Write,
    customers: usize,
    each: impl Fn(
        &mut dyn FnMut(Option<&CustomerProfile>) -> std::io::Result<()>,
    ) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut table = Table::default();
    each(&mut |p| {
        if let Some(p) = p {
            Table::index(&mut table.segments, &p.segment)?;
            if let Some(b) = &p.behaviour_segment {
                Table::index(&mut table.behaviour_segments, b)?;
            }
        }
        Ok(())
    })?;
    let mut json = serde_json::to_vec(&table).map_err(std::io::Error::other)?;
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    w.write_all(MAGIC)?;
    w.write_all(&(customers as u64).to_le_bytes())?;
    w.write_all(&(RECORD as u64).to_le_bytes())?;
    w.write_all(&(json.len() as u64).to_le_bytes())?;
    w.write_all(&json)?;
    let mut written = 0usize;
    let mut record = [0u8; RECORD];
    each(&mut |p| {
        encode(p, &mut table, &mut record)?;
        written += 1;
        w.write_all(&record)
    })?;
    if written != customers {
        return Err(std::io::Error::other(format!(
            "{written} profile records for {customers} customers"
        )));
    }
    Ok(())
}

fn encode(
    p: Option<&CustomerProfile>,
    table: &mut Table,
    out: &mut [u8; RECORD],
) -> std::io::Result<()> {
    out.fill(0);
    let Some(p) = p else {
        return Ok(());
    };
    let mut flags = PRESENT;
    if p.spend_complete {
        flags |= SPEND_COMPLETE;
    }
    let mut put = |at: usize, b: &[u8]| out[at..at + b.len()].copy_from_slice(b);
    put(4, &p.orders.to_le_bytes());
    put(8, &p.occasions.to_le_bytes());
    let stage = STAGES
        .iter()
        .position(|&s| s == p.stage)
        .expect("every stage") as u8;
    put(12, &[p.r, p.f, p.m, stage]);
    put(
        16,
        &Table::index(&mut table.segments, &p.segment)?.to_le_bytes(),
    );
    let behaviour = match &p.behaviour_segment {
        Some(b) => {
            flags |= BEHAVIOUR;
            Table::index(&mut table.behaviour_segments, b)?
        }
        None => 0,
    };
    put(18, &behaviour.to_le_bytes());
    put(24, &p.first_purchase.to_le_bytes());
    put(32, &p.last_purchase.to_le_bytes());
    put(40, &p.total_spend.to_le_bytes());
    put(48, &p.average_order_value.to_le_bytes());
    put(56, &p.recency_days.to_le_bytes());
    put(64, &p.typical_gap_days.to_le_bytes());
    for (at, bit, v) in [
        (72, P_ALIVE, p.p_alive),
        (80, CHURN, p.churn_risk),
        (88, E30, p.expected_purchases_30d),
        (96, E90, p.expected_purchases_90d),
        (112, CLV, p.clv),
        (120, BUY30, p.buy_within_30d_probability),
    ] {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            flags |= bit;
            put(at, &v.to_le_bytes());
        }
    }
    if let Some(t) = p.predicted_next_purchase {
        flags |= NEXT;
        put(104, &t.to_le_bytes());
    }
    put(0, &flags.to_le_bytes());
    Ok(())
}

/// The profiles of a loaded model, read in place from the mapped
/// `customer_profiles.bin`.
#[derive(Clone)]
pub struct ProfileTable {
    map: Arc<Mapping>,
    /// Byte offset of the first record.
    records: usize,
    customers: usize,
    table: Table,
}

impl std::fmt::Debug for ProfileTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ProfileTable({:?}, {} customers)",
            self.map, self.customers
        )
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn f64_at(b: &[u8], at: usize) -> f64 {
    f64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl ProfileTable {
    /// Checks the mapped file (see the module docs); the error says what
    /// is wrong, for the caller to name the file.
    pub fn open(map: Arc<Mapping>) -> Result<ProfileTable, String> {
        let b = map.bytes();
        if b.len() < HEADER || &b[..8] != MAGIC {
            return Err("not a profile file (bad magic bytes or too short)".into());
        }
        let customers = u64_at(b, 8);
        let record = u64_at(b, 16);
        let table_len = u64_at(b, 24);
        if record != RECORD as u64 {
            return Err(format!(
                "records of {record} bytes, this build reads {RECORD}"
            ));
        }
        let need = HEADER as u128 + u128::from(table_len) + u128::from(customers) * RECORD as u128;
        if need != b.len() as u128 {
            return Err(format!(
                "{customers} records and a table of {table_len} bytes need {need} bytes, the file has {}",
                b.len()
            ));
        }
        if !table_len.is_multiple_of(8) {
            return Err("the name table is not padded to 8 bytes".into());
        }
        // Within the file's length, so within usize.
        let (customers, table_len) = (customers as usize, table_len as usize);
        let table: Table = serde_json::from_slice(&b[HEADER..HEADER + table_len])
            .map_err(|e| format!("name table: {e}"))?;
        let records = HEADER + table_len;
        for c in 0..customers {
            let r = &b[records + c * RECORD..records + (c + 1) * RECORD];
            let flags = u32_at(r, 0);
            let bad = |what: &str| Err(format!("customer {c}: {what}"));
            if flags & PRESENT == 0 {
                if r.iter().any(|&x| x != 0) {
                    return bad("a record without a profile is not all zeros");
                }
                continue;
            }
            if flags & !KNOWN_FLAGS != 0 {
                return bad("unknown flags");
            }
            if usize::from(r[15]) >= STAGES.len() {
                return bad("unknown lifecycle stage");
            }
            if usize::from(u16_at(r, 16)) >= table.segments.len() {
                return bad("segment index out of range");
            }
            if flags & BEHAVIOUR != 0
                && usize::from(u16_at(r, 18)) >= table.behaviour_segments.len()
            {
                return bad("behaviour segment index out of range");
            }
        }
        Ok(ProfileTable {
            map,
            records,
            customers,
            table,
        })
    }

    pub fn len(&self) -> usize {
        self.customers
    }

    pub fn is_empty(&self) -> bool {
        self.customers == 0
    }

    /// The profile of customer index `c`, if they have one.
    pub fn get(&self, c: usize) -> Option<CustomerProfile> {
        if c >= self.customers {
            return None;
        }
        let at = self.records + c * RECORD;
        let r = &self.map.bytes()[at..at + RECORD];
        let flags = u32_at(r, 0);
        if flags & PRESENT == 0 {
            return None;
        }
        let opt = |bit: u32, at: usize| (flags & bit != 0).then(|| f64_at(r, at));
        // Indices and the stage were checked by `open`.
        let name =
            |names: &[String], i: u16| names.get(usize::from(i)).cloned().unwrap_or_default();
        Some(CustomerProfile {
            orders: u32_at(r, 4),
            occasions: u32_at(r, 8),
            first_purchase: i64_at(r, 24),
            last_purchase: i64_at(r, 32),
            total_spend: f64_at(r, 40),
            average_order_value: f64_at(r, 48),
            spend_complete: flags & SPEND_COMPLETE != 0,
            recency_days: f64_at(r, 56),
            r: r[12],
            f: r[13],
            m: r[14],
            segment: name(&self.table.segments, u16_at(r, 16)),
            stage: STAGES
                .get(usize::from(r[15]))
                .copied()
                .unwrap_or(Stage::New),
            typical_gap_days: f64_at(r, 64),
            p_alive: opt(P_ALIVE, 72),
            churn_risk: opt(CHURN, 80),
            expected_purchases_30d: opt(E30, 88),
            expected_purchases_90d: opt(E90, 96),
            predicted_next_purchase: (flags & NEXT != 0).then(|| i64_at(r, 104)),
            clv: opt(CLV, 112),
            buy_within_30d_probability: opt(BUY30, 120),
            behaviour_segment: (flags & BEHAVIOUR != 0)
                .then(|| name(&self.table.behaviour_segments, u16_at(r, 18))),
        })
    }
}
