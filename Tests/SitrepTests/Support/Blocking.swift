import Dispatch

/// Runs blocking work (processes, polling sleeps) on a Dispatch thread, not on Swift
/// concurrency's cooperative pool: on a 2-core machine, two blocked cooperative threads stall
/// every other suite running in parallel and make their timing checks lie.
func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

extension PrivateRedisServer {
    func startAsync() async throws { try await offCooperativePool { try start() } }
    func stopAsync() async throws { try await offCooperativePool { try stop() } }
}
