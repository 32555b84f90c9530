import Synchronization
import Testing

@testable import Handlers

/// `database { … }`: an operation that outlives its deadline is abandoned (cancelled) and
/// answered as unavailable; one that finishes in time returns its value.
@Suite("database deadline")
struct DatabaseDeadlineTests {
    @Test func inTimeTheValueComesBack() async throws {
        let v = try await database(deadline: .seconds(5)) { 42 }
        #expect(v == 42)
    }

    @Test func pastTheDeadlineTheWorkIsCancelledAndTheCallerToldUnavailable() async throws {
        let cancelled = Atomic<Bool>(false)
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: DatabaseUnavailable.self) {
            try await database(deadline: .milliseconds(100)) {
                do {
                    try await Task.sleep(for: .seconds(10))
                } catch {
                    cancelled.store(true, ordering: .relaxed)
                    throw error
                }
                return 1
            }
        }
        #expect(clock.now - start < .seconds(2))
        let deadline = clock.now + .seconds(2)
        while !cancelled.load(ordering: .relaxed) && clock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        let wasCancelled = cancelled.load(ordering: .relaxed)
        #expect(wasCancelled)
    }

    @Test func failuresPassThroughUnchanged() async throws {
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await database(deadline: .seconds(5)) { () async throws -> Int in throw Boom() } }
    }
}
