//! BIG-bench JSON tasks, read, prompted and scored exactly as the official `bigbench`
//! package (1.0.0) does, so that labrun's numbers compare with published ones.
//!
//! - [`task`]: the loader (`json_task.py`'s fields, defaults and checks) and the n-shot
//!   prompts, drawn with numpy's legacy `RandomState` ([`rng`]);
//! - [`post`]: the post-processing of generations;
//! - [`metrics`], [`bleu`], [`rouge`]: `task_metrics.py` and the t5/sacrebleu/rouge_score
//!   code it calls;
//! - [`eval`]: evaluation of a [`eval::Model`] and aggregation over subtasks.

pub mod bleu;
pub mod eval;
pub mod json;
pub mod metrics;
pub mod post;
pub mod rng;
pub mod rouge;
pub mod task;
