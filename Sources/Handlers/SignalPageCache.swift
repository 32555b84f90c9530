import Foundation
import Generated
import SitrepRuntime
import Synchronization

/// Unfiltered signal list pages (`GET /v1/signals?limit=…[&cursor=…]`, what every dashboard
/// polls), kept per instance while no signal has changed.
///
/// A page is valid only while the instance knows of no newer signal event: the live stream's hub
/// (``SignalStreamHub``) tracks the head of `signal_events`, which every ingest and triage writes
/// in its transaction, and learns of other instances' writes over Redis pub/sub within
/// milliseconds; this instance's own writes drop every page before their answer is sent (read
/// your writes). `maxAge` bounds what a lost wake-up can cost (the hub also polls every 2 s). A
/// page is stored with the head as it was *before* its query ran, so a change that lands during
/// the query only makes the page expire early, never live too long.
final class SignalPageCache: Sendable {
    struct Key: Hashable {
        let limit: Int
        let after: UUID?
    }

    struct Page: Sendable {
        /// The page as it is sent, with its ETag.
        let body: Encoded<SignalPage>

        var etag: String { body.etag }
    }

    /// What a page depends on: the event head the hub knew, and this instance's write count.
    struct Mark: Equatable {
        let seq: Int64
        let writes: Int
    }

    private struct Entry {
        let page: Page
        let mark: Mark
        let storedAt: ContinuousClock.Instant
    }

    private struct State {
        var entries: [Key: Entry] = [:]
    }

    let maxAge: Duration
    /// Pages kept at most; the oldest goes first.
    let capacity: Int
    private let state = Mutex(State())

    init(maxAge: Duration, capacity: Int = 64) {
        self.maxAge = maxAge
        self.capacity = capacity
    }

    var enabled: Bool { maxAge > .zero }

    func page(_ key: Key, mark: Mark) -> Page? {
        let now = ContinuousClock.now
        return state.withLock { s in
            guard let e = s.entries[key] else { return nil }
            guard e.mark == mark, now - e.storedAt < maxAge else {
                s.entries[key] = nil
                return nil
            }
            return e.page
        }
    }

    func store(_ page: Page, for key: Key, mark: Mark) {
        let now = ContinuousClock.now
        state.withLock { s in
            if s.entries.count >= capacity, s.entries[key] == nil {
                // Evict the oldest (a linear scan over a few dozen entries).
                if let oldest = s.entries.min(by: { $0.value.storedAt < $1.value.storedAt })?.key { s.entries[oldest] = nil }
            }
            s.entries[key] = Entry(page: page, mark: mark, storedAt: now)
        }
    }
}
