//! brfed adapters.
