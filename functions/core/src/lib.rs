//! brfed domain.
