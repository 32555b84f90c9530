import Logging
import PostgresNIO

/// Keeps the dashboard's per-hour signal counts compact: writers of `signals` append their
/// changes as rows of `signal_count_deltas` (migration 0014), and the dashboard sums those with
/// the totals of `signal_counts`; folding moves the deltas into the totals, so the sum reads a
/// few hundred rows rather than one row per group for every write since the last fold.
///
/// `sitrep serve` folds every `interval`; `seed-demo` folds once after loading. Any number of
/// instances may fold: PostgreSQL lets one fold run at a time and the others return at once.
public struct SignalCountsFolder: Sendable {
    let db: PostgresClient
    let interval: Duration
    let logger: Logger

    public init(db: PostgresClient, interval: Duration = .seconds(2), logger: Logger) {
        self.db = db
        self.interval = interval
        self.logger = logger
    }

    /// Folds every committed delta; returns how many delta rows it folded (0 when another
    /// instance is folding).
    @discardableResult
    public func fold() async throws -> Int {
        let rows = try await db.query("SELECT signal_counts_fold()", logger: logger)
        var folded: Int64 = 0
        for try await n in rows.decode(Int64.self) { folded = n }
        return Int(folded)
    }

    /// Folds every `interval` until the task is cancelled. A failed fold (the database away) is
    /// logged and tried again at the next interval; the deltas wait, and the counts stay right.
    public func run() async {
        var failing = false
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            do {
                let folded = try await fold()
                if failing {
                    logger.info("folding signal counts again", metadata: ["folded": "\(folded)"])
                    failing = false
                }
            } catch {
                if !failing {
                    logger.warning("could not fold signal counts; retrying", metadata: ["error": "\(error)"])
                    failing = true
                }
            }
        }
    }
}
