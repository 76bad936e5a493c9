//! Progress bars for the long stages of a training run (on stderr, hidden when
//! stderr is not a terminal).

use encore_model::pipeline::Stage;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// Draws one bar for the ALS iterations and a spinner for the other stages,
/// and records how long each stage took.
pub struct StageProgress {
    show: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    current: Option<(&'static str, Instant)>,
    /// `(stage name, seconds)` in the order they ran.
    pub timings: Vec<(&'static str, f64)>,
}

impl StageProgress {
    /// A recorder that draws bars only when `show` is true.
    pub fn new(show: bool) -> Self {
        StageProgress {
            show,
            bar: None,
            started: Instant::now(),
            current: None,
            timings: Vec::new(),
        }
    }

    fn enter(&mut self, name: &'static str, len: Option<u64>) {
        self.finish_current();
        let bar = match len {
            _ if !self.show => ProgressBar::hidden(),
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(name);
        if self.show {
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        self.bar = Some(bar);
        self.current = Some((name, Instant::now()));
    }

    fn finish_current(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some((name, t)) = self.current.take() {
            self.timings.push((name, t.elapsed().as_secs_f64()));
        }
    }

    /// Feeds one stage event.
    pub fn on_stage(&mut self, stage: Stage) {
        match stage {
            Stage::Matrix => self.enter("matrix", None),
            Stage::Als(n) => self.enter("als", Some(n as u64)),
            Stage::AlsIteration(i, _) => {
                if let Some(bar) = &self.bar {
                    bar.set_position(i as u64);
                }
            }
            Stage::CoPurchase => self.enter("co-purchase", None),
            Stage::Popularity => self.enter("popularity", None),
            Stage::Index => self.enter("similar-items index", None),
            Stage::SimilarLists => self.enter("similar-items lists", None),
            Stage::Ranker => self.enter("re-ranker", None),
            Stage::Customers => self.enter("customer models", None),
            Stage::ForYou => self.enter("for-you and new-item lists", None),
            Stage::NewItems => self.enter("new-item lists", None),
        }
    }

    /// Ends the last stage and returns the total elapsed seconds.
    pub fn finish(&mut self) -> f64 {
        self.finish_current();
        self.started.elapsed().as_secs_f64()
    }
}
