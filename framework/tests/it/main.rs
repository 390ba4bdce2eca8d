//! The framework crate's one integration-test binary.

mod churn;
mod frames;
mod runtime;
