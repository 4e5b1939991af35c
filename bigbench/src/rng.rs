//! numpy's legacy `RandomState`, as far as the official BIG-bench code uses it: MT19937
//! seeded by `init_genrand`, `permutation`/`shuffle` (Fisher–Yates from the end, each index
//! drawn by rejection from the smallest covering bit mask), `choice` without replacement
//! (the first k of a permutation) and `choice` with replacement / `randint` (masked
//! rejection, no draw when the range holds one value). The official prompts depend on
//! every draw, so these follow numpy's C code step for step; `tests/numpy.rs` checks them
//! against values numpy produced.

use rand_mt::Mt;

pub struct RandomState {
    mt: Mt,
}

impl RandomState {
    /// `np.random.RandomState(seed)`.
    pub fn new(seed: u32) -> RandomState {
        RandomState { mt: Mt::new(seed) }
    }

    fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        (hi << 32) | u64::from(self.next_u32())
    }

    /// A uniform integer in `0..=max` (numpy's `random_interval`, also its masked bounded
    /// fill): draws from the smallest all-ones mask covering `max` until one fits.
    pub fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        if max <= u64::from(u32::MAX) {
            loop {
                let v = u64::from(self.next_u32()) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `shuffle` of a 1-d array.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.interval(i as u64) as usize;
            v.swap(i, j);
        }
    }

    /// `permutation(n)`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        self.shuffle(&mut idx);
        idx
    }

    /// `choice(n, k, replace=False)`: indices of k distinct items.
    pub fn choice_distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut p = self.permutation(n);
        p.truncate(k);
        p
    }

    /// `choice(n)` with replacement, one item (`randint(0, n)`); `n` must be positive.
    pub fn choice_one(&mut self, n: usize) -> usize {
        self.interval(n as u64 - 1) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values printed by numpy 2.4 for `RandomState(42)`.
    #[test]
    fn matches_numpy() {
        assert_eq!(RandomState::new(42).permutation(10), [8, 1, 5, 0, 7, 2, 9, 4, 3, 6]);
        let mut r = RandomState::new(42);
        let draws: Vec<usize> = (0..5).map(|_| r.choice_one(7)).collect();
        assert_eq!(draws, [6, 3, 4, 6, 2]);
    }
}
