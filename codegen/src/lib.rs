//! Weft's service model and code generator.
