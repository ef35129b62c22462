//! Where an event sits in a store's global feed, and how far a reader of that feed has got.
//!
//! Both are opaque to users: stores build them, readers pass them back. The representation is
//! shared so that core can answer "has this checkpoint reached that position?" for any store:
//!
//! | store      | partition        | major               | minor                      |
//! |------------|------------------|---------------------|----------------------------|
//! | in-memory  | 0                | 0                   | global sequence number     |
//! | PostgreSQL | 0                | writing transaction | global position (identity) |
//! | Kafka      | topic partition  | offset              | 0                          |
//!
//! Within one partition positions are totally ordered by `(major, minor)`; across partitions
//! there is no order (Kafka promises order per partition only).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// The place of one event in a store's global feed. Opaque: only stores create positions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    partition: u32,
    major: u64,
    minor: u64,
}

impl Position {
    /// Builds a position. Meant for store implementations; see the module docs for the meaning
    /// of each part in each store.
    pub const fn new(partition: u32, major: u64, minor: u64) -> Self {
        Position {
            partition,
            major,
            minor,
        }
    }

    /// The partition this position belongs to.
    pub const fn partition(&self) -> u32 {
        self.partition
    }

    /// The store-defined major component (transaction id, offset, or 0).
    pub const fn major(&self) -> u64 {
        self.major
    }

    /// The store-defined minor component (global sequence, or 0).
    pub const fn minor(&self) -> u64 {
        self.minor
    }

    fn key(&self) -> (u64, u64) {
        (self.major, self.minor)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.partition, self.major, self.minor)
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Position({self})")
    }
}

impl FromStr for Position {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidCheckpoint {
            value: s.to_owned(),
        };
        let mut parts = s.split(':');
        let mut next = || parts.next().ok_or_else(bad);
        let position = Position {
            partition: next()?.parse().map_err(|_| bad())?,
            major: next()?.parse().map_err(|_| bad())?,
            minor: next()?.parse().map_err(|_| bad())?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(position)
    }
}

/// How far a reader of the global feed has got: the last position it consumed in each
/// partition. Serializes to a short text (`"0:17:1042"`, partitions separated by `,`) so a
/// projection target can store it without knowing the store.
///
/// ```
/// use foldline::{Checkpoint, Position};
/// let mut cp = Checkpoint::START;
/// cp.advance(Position::new(0, 0, 7));
/// assert!(cp.covers(&Position::new(0, 0, 7)));
/// assert!(!cp.covers(&Position::new(0, 0, 8)));
/// let bytes = cp.to_bytes();
/// assert_eq!(Checkpoint::from_bytes(&bytes)?, cp);
/// # Ok::<(), foldline::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Checkpoint {
    // Sorted by partition, at most one entry per partition.
    positions: Vec<Position>,
}

impl Checkpoint {
    /// Before the first event: a reader starting here sees the whole feed.
    pub const START: Checkpoint = Checkpoint {
        positions: Vec::new(),
    };

    /// Whether this is [`Checkpoint::START`].
    pub fn is_start(&self) -> bool {
        self.positions.is_empty()
    }

    /// The last consumed position in each partition, ordered by partition.
    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// The last consumed position in `partition`, if any.
    pub fn get(&self, partition: u32) -> Option<&Position> {
        self.positions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()
            .map(|i| &self.positions[i])
    }

    /// Whether the event at `position` is at or behind this checkpoint (already consumed).
    pub fn covers(&self, position: &Position) -> bool {
        self.get(position.partition)
            .is_some_and(|p| p.key() >= position.key())
    }

    /// Whether every partition of `other` is covered by this checkpoint.
    pub fn covers_checkpoint(&self, other: &Checkpoint) -> bool {
        other.positions.iter().all(|p| self.covers(p))
    }

    /// Records `position` as consumed. Never moves a partition backwards.
    pub fn advance(&mut self, position: Position) {
        match self
            .positions
            .binary_search_by_key(&position.partition, |p| p.partition)
        {
            Ok(i) => {
                if position.key() > self.positions[i].key() {
                    self.positions[i] = position;
                }
            }
            Err(i) => self.positions.insert(i, position),
        }
    }

    /// About how many events lie between this checkpoint and a later one (`later`, say the
    /// store's head): for progress bars and lag gauges, not for correctness. The sum of
    /// [`distance_by_partition`](Checkpoint::distance_by_partition).
    ///
    /// ```
    /// use foldline::Checkpoint;
    ///
    /// // Kafka: the last offset read per partition.
    /// let read: Checkpoint = "0:9:0,1:4:0".parse()?;
    /// let head: Checkpoint = "0:9:0,1:7:0,2:2:0".parse()?;
    /// assert_eq!(read.distance_to(&head), 6);
    /// assert_eq!(read.distance_by_partition(&head), [(0, 0), (1, 3), (2, 3)]);
    /// # Ok::<(), foldline::Error>(())
    /// ```
    pub fn distance_to(&self, later: &Checkpoint) -> u64 {
        self.distance_by_partition(later)
            .into_iter()
            .map(|(_, distance)| distance)
            .sum()
    }

    /// About how many events lie between this checkpoint and `later` in each partition of
    /// `later`, ordered by partition (for a lag per partition: one partition far behind is
    /// not hidden by the others). Per partition it counts by the minor component where stores
    /// number events there (in-memory, PostgreSQL: the global sequence, which may have gaps
    /// from rolled-back appends), else by the major one (Kafka offsets, which also count
    /// transaction markers). A partition this checkpoint has not reached counts from its
    /// start: by offset, the event at offset `n` is the `n + 1`-th.
    pub fn distance_by_partition(&self, later: &Checkpoint) -> Vec<(u32, u64)> {
        later
            .positions
            .iter()
            .map(|head| {
                let distance = match (self.get(head.partition), head.minor > 0) {
                    (Some(read), true) => head.minor.saturating_sub(read.minor),
                    (None, true) => head.minor,
                    (Some(read), false) => head.major.saturating_sub(read.major),
                    // Offsets count from 0: up to offset n, n + 1 records.
                    (None, false) => head.major.saturating_add(1),
                };
                (head.partition, distance)
            })
            .collect()
    }

    /// The checkpoint as bytes (UTF-8 text), for a projection target to store.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Parses bytes written by [`Checkpoint::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCheckpoint`] when the bytes are not a checkpoint.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(bytes).map_err(|_| Error::InvalidCheckpoint {
            value: String::from_utf8_lossy(bytes).into_owned(),
        })?;
        text.parse()
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.positions.is_empty() {
            return f.write_str("start");
        }
        for (i, p) in self.positions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            fmt::Display::fmt(p, f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checkpoint({self})")
    }
}

impl FromStr for Checkpoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut checkpoint = Checkpoint::START;
        if s == "start" {
            return Ok(checkpoint);
        }
        for part in s.split(',') {
            let position: Position = part.parse().map_err(|_| Error::InvalidCheckpoint {
                value: s.to_owned(),
            })?;
            if checkpoint.get(position.partition).is_some() {
                return Err(Error::InvalidCheckpoint {
                    value: s.to_owned(),
                });
            }
            checkpoint.advance(position);
        }
        Ok(checkpoint)
    }
}

impl Serialize for Checkpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Checkpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let mut cp = Checkpoint::START;
        assert_eq!(cp.to_string(), "start");
        cp.advance(Position::new(3, 10, 0));
        cp.advance(Position::new(1, 5, 0));
        assert_eq!(cp.to_string(), "1:5:0,3:10:0");
        assert_eq!("1:5:0,3:10:0".parse::<Checkpoint>().unwrap(), cp);
        assert!("1:5".parse::<Checkpoint>().is_err());
        assert!("1:5:0,1:6:0".parse::<Checkpoint>().is_err());
    }

    #[test]
    fn distances_count_per_partition_and_from_the_start_where_nothing_was_read() {
        // PostgreSQL-like: one partition, numbered by the minor component.
        let head = "0:20:8".parse::<Checkpoint>().unwrap();
        assert_eq!(Checkpoint::START.distance_to(&head), 8);
        assert_eq!(
            "0:19:5".parse::<Checkpoint>().unwrap().distance_to(&head),
            3
        );
        // Kafka-like: offsets per partition; a partition never read counts from offset 0.
        let head = "0:4:0,1:0:0,3:9:0".parse::<Checkpoint>().unwrap();
        assert_eq!(
            Checkpoint::START.distance_by_partition(&head),
            [(0, 5), (1, 1), (3, 10)]
        );
        let read = "0:4:0,3:2:0".parse::<Checkpoint>().unwrap();
        assert_eq!(read.distance_by_partition(&head), [(0, 0), (1, 1), (3, 7)]);
        assert_eq!(read.distance_to(&head), 8);
        // At the head: nothing anywhere.
        assert_eq!(head.distance_to(&head), 0);
        // Partitions read but not in `later` do not count.
        assert_eq!(head.distance_by_partition(&Checkpoint::START), []);
    }

    #[test]
    fn never_moves_back() {
        let mut cp = Checkpoint::START;
        cp.advance(Position::new(0, 9, 2));
        cp.advance(Position::new(0, 9, 1));
        assert_eq!(cp.get(0), Some(&Position::new(0, 9, 2)));
        assert!(cp.covers(&Position::new(0, 8, 100)));
        assert!(!cp.covers(&Position::new(1, 0, 0)));
    }
}
