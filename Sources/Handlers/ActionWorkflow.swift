import Generated

/// The action tracker's status rules as one small, pure type. Handlers ask it before writing;
/// the database's `actions_guard` trigger enforces the same moves underneath (migration 0006).
///
///     open ◀──▶ in_progress ──▶ done (final)
///       │  ▲        │  ▲
///       ▼  │        ▼  │
///       blocked ◀───┘  │        any of open / in_progress / blocked ──cancel──▶ cancelled (final)
///          └───────────┘
public enum ActionWorkflow {
    /// Why a change is refused.
    public enum Refusal: Error, Sendable, Equatable {
        /// Not possible from the current state (409 `action.invalid_transition`).
        case invalidTransition(from: ActionStatus, to: ActionStatus, allowed: [ActionStatus])
        /// A viewer asked to write to an action they do not own (403 `action.not_owner`).
        case notOwner
    }

    /// Whether nothing can change any more.
    public static func isFinal(_ status: ActionStatus) -> Bool { status == .done || status == .cancelled }

    /// States reachable with `updateAction` from `status` (cancelling is a separate operation).
    public static func updateTargets(from status: ActionStatus) -> [ActionStatus] {
        switch status {
        case .open: [.inProgress, .blocked, .done]
        case .inProgress: [.open, .blocked, .done]
        case .blocked: [.open, .inProgress]
        case .done, .cancelled: []
        }
    }

    /// Every state reachable from `status` by any operation, for error messages.
    public static func allowed(from status: ActionStatus) -> [ActionStatus] {
        isFinal(status) ? [] : updateTargets(from: status) + [.cancelled]
    }

    /// The status after an update asking for `requested` (nil: the status is not being changed).
    /// A final action refuses every update, even one that leaves the status alone.
    public static func update(from status: ActionStatus, to requested: ActionStatus?) -> Result<ActionStatus, Refusal> {
        let target = requested ?? status
        if isFinal(status) || (target != status && !updateTargets(from: status).contains(target)) {
            return .failure(.invalidTransition(from: status, to: target, allowed: allowed(from: status)))
        }
        return .success(target)
    }

    /// Cancelling: allowed from every state that is not final.
    public static func cancel(from status: ActionStatus) -> Result<ActionStatus, Refusal> {
        isFinal(status) ? .failure(.invalidTransition(from: status, to: .cancelled, allowed: [])) : .success(.cancelled)
    }

    /// A progress note: on any action that is not final, by Admin/Executive or by its owner.
    public static func addProgress(status: ActionStatus, ownerId: String, actorId: String, actorRoles: Set<String>) -> Result<Void, Refusal> {
        let privileged = actorRoles.contains("Sitrep.Admin") || actorRoles.contains("Sitrep.Executive")
        guard privileged || ownerId == actorId else { return .failure(.notOwner) }
        if isFinal(status) { return .failure(.invalidTransition(from: status, to: status, allowed: [])) }
        return .success(())
    }

    /// The problem text for a refusal.
    public static func describe(_ refusal: Refusal) -> String {
        switch refusal {
        case .invalidTransition(let from, let to, let allowed):
            if allowed.isEmpty { return "The action is \(from.rawValue), which is final: it cannot change any more." }
            let names = allowed.map { $0 == .cancelled ? "cancelled (through cancelAction)" : $0.rawValue }
            return "The action is \(from.rawValue) and cannot become \(to.rawValue) here; allowed from there: "
                + names.joined(separator: ", ") + "."
        case .notOwner:
            return "Only the action's owner, an admin or an executive can add progress to it."
        }
    }
}
