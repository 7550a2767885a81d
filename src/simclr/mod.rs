//! Layer 7: SimCLR pre-training, the kNN monitor and the linear evaluation, with checkpoints.

pub mod checkpoint;
pub mod config;
pub mod features;
pub mod knn;
pub mod linear_eval;
pub mod pretrain;
mod probe_inputs;
pub mod saliency;
pub mod stn;

pub use config::{
    GuideConfig, OptimizerKind, PretrainConfig, StnConfig, StnObjective, StnOverrides,
};
pub use linear_eval::{linear_eval, BackboneBn, LinearEvalConfig, LinearEvalResult, ProbeProtocol};
pub use pretrain::{
    initial_encoder, load_placement, load_trained, pretrain, simclr_step, trained_config,
    EpochRecord, RunOptions, Trained,
};
