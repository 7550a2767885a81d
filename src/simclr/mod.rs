//! Layer 7: SimCLR pre-training, the kNN monitor and the linear evaluation, with checkpoints.

pub mod checkpoint;
pub mod config;
pub mod features;
pub mod knn;
pub mod linear_eval;
pub mod pretrain;

pub use config::{OptimizerKind, PretrainConfig};
pub use linear_eval::{linear_eval, LinearEvalConfig, LinearEvalResult};
pub use pretrain::{load_trained, pretrain, EpochRecord, RunOptions, Trained};
