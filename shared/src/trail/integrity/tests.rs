//! Tests of the integrity rules.
