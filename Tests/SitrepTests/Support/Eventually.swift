/// Polls `condition` every 5 ms until it holds; throws after `timeout`. For state another task or
/// process changes shortly after the event a test waited for.
func eventually(_ what: String, timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw EventuallyTimedOut(what: what) }
        try await Task.sleep(for: .milliseconds(5))
    }
}

struct EventuallyTimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}
