/// What PostgreSQL's error codes (SQLSTATE) tell the storage layer, for every query path
/// (postgres-nio's `PSQLError` and its `PostgresError`).
public enum SQLState {
    /// Whether the code says the server went away mid-query, not that the statement failed:
    /// class 08 (connection exception) or 57P (operator intervention: admin_shutdown 57P01 on a
    /// fast shutdown, crash_shutdown, cannot_connect_now while it starts).
    public static func meansConnectionLost(_ state: String) -> Bool {
        state.hasPrefix("08") || state.hasPrefix("57P")
    }
}
