//! Upload slots: how many uploads stream at once on this server, and how
//! many of those one caller may hold, so that one client (or one leaked
//! token) trickling bytes cannot keep every other upload out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one server.
pub(crate) struct UploadSlots {
    total: Arc<Semaphore>,
    capacity: usize,
    per_caller: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotRefused {
    /// Every slot of the server is taken (the server's limit).
    ServerFull(usize),
    /// The caller holds its whole share (its limit).
    CallerShareTaken(usize),
}

/// One held slot, given back when dropped.
pub(crate) struct UploadSlot {
    slots: Arc<UploadSlots>,
    caller: String,
    _permit: OwnedSemaphorePermit,
}

impl UploadSlots {
    /// `capacity` slots in all, at most `per_caller` of them for one caller.
    pub(crate) fn new(capacity: usize, per_caller: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        Arc::new(Self {
            total: Arc::new(Semaphore::new(capacity)),
            capacity,
            per_caller: per_caller.clamp(1, capacity),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `caller` (the token's name, or the actor without auth),
    /// at once or not at all.
    pub(crate) fn try_acquire(self: &Arc<Self>, caller: &str) -> Result<UploadSlot, SlotRefused> {
        // A poisoned map still counts correctly: every change is one step.
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = held.get(caller).copied().unwrap_or(0);
        if mine >= self.per_caller {
            return Err(SlotRefused::CallerShareTaken(self.per_caller));
        }
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| SlotRefused::ServerFull(self.capacity))?;
        held.insert(caller.to_owned(), mine + 1);
        Ok(UploadSlot {
            slots: self.clone(),
            caller: caller.to_owned(),
            _permit: permit,
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut held = self
            .slots
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_caller_gets_its_share_and_others_the_rest() {
        let slots = UploadSlots::new(4, 2);
        let a1 = slots.try_acquire("a").unwrap();
        let _a2 = slots.try_acquire("a").unwrap();
        assert_eq!(
            slots.try_acquire("a").err(),
            Some(SlotRefused::CallerShareTaken(2))
        );
        let _b1 = slots.try_acquire("b").unwrap();
        let _b2 = slots.try_acquire("b").unwrap();
        assert_eq!(
            slots.try_acquire("c").err(),
            Some(SlotRefused::ServerFull(4))
        );
        drop(a1);
        let _c = slots.try_acquire("c").unwrap();
        assert_eq!(
            slots.try_acquire("a").err(),
            Some(SlotRefused::ServerFull(4))
        );
        assert_eq!(slots.held.lock().unwrap().get("a"), Some(&1));
    }

    #[test]
    fn the_share_is_at_least_one_and_at_most_all() {
        let slots = UploadSlots::new(1, 0);
        let _only = slots.try_acquire("a").unwrap();
        assert!(slots.try_acquire("a").is_err());
        let slots = UploadSlots::new(2, 10);
        let _a = slots.try_acquire("a").unwrap();
        let _b = slots.try_acquire("a").unwrap();
        assert_eq!(
            slots.try_acquire("a").err(),
            Some(SlotRefused::CallerShareTaken(2))
        );
    }
}
