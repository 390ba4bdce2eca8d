//! The framework crate's one integration-test binary.

mod churn;
mod credit;
mod cuttable;
mod faults;
mod frames;
mod hostile;
mod limits;
mod load;
mod peer;
mod props;
mod runtime;
mod seeded;
mod setup;
