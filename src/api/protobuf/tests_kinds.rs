//! Round trips for every served kind.
