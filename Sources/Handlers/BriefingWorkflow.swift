import Generated

/// The briefing approval workflow as one small, pure type: which transitions exist, who may
/// take them, and what is refused and why. Handlers ask it before writing; the database's
/// `briefings_guard` trigger enforces the same rules underneath (migration 0002).
///
///     draft ──submit──▶ pending_approval ──approve──▶ approved ──distribute──▶ distributed
///       ▲                     │
///       └──────return─────────┘
public enum BriefingWorkflow {
    public enum Transition: String, Sendable, CaseIterable {
        case submit, `return`, approve, distribute

        /// The audit action for it (`briefing.submit`, …).
        public var action: String { "briefing.\(rawValue)" }
    }

    /// Who is asking: the principal's id and roles.
    public struct Actor: Sendable, Equatable {
        public var id: String
        public var roles: Set<String>
        public init(id: String, roles: Set<String>) {
            self.id = id
            self.roles = roles
        }
    }

    /// Why a transition is refused.
    public enum Refusal: Error, Sendable, Equatable {
        /// Not possible from the current state (409 `briefing.invalid_transition`).
        case invalidTransition(from: BriefingStatus, allowed: [Transition])
        /// Four eyes: the submitter cannot approve (403 `briefing.self_approval_forbidden`).
        case selfApproval
        /// An admin may only withdraw a submission of their own (403 `briefing.withdraw_forbidden`).
        case notOwnSubmission
        /// The actor holds none of the roles the transition needs (403 `auth.forbidden`).
        case missingRole([String])
    }

    /// The state each transition leads to, from the state it starts in.
    public static func edge(_ t: Transition) -> (from: BriefingStatus, to: BriefingStatus) {
        switch t {
        case .submit: (.draft, .pendingApproval)
        case .return: (.pendingApproval, .draft)
        case .approve: (.pendingApproval, .approved)
        case .distribute: (.approved, .distributed)
        }
    }

    /// Transitions possible from `status`, in declaration order.
    public static func allowed(from status: BriefingStatus) -> [Transition] {
        Transition.allCases.filter { edge($0).from == status }
    }

    /// Roles that may take the transition (mirrors the operations' `x-roles`).
    public static func roles(for t: Transition) -> [String] {
        switch t {
        case .submit: ["Sitrep.Admin"]
        case .return: ["Sitrep.Executive", "Sitrep.Admin"]
        case .approve: ["Sitrep.Executive"]
        case .distribute: ["Sitrep.Admin", "Sitrep.Executive"]
        }
    }

    /// The content can be edited only in `draft`.
    public static func isEditable(_ status: BriefingStatus) -> Bool { status == .draft }

    /// The new state, or why not. `submittedBy` is the principal id recorded at submission.
    public static func decide(
        _ t: Transition, from status: BriefingStatus, actor: Actor, submittedBy: String?
    ) -> Result<BriefingStatus, Refusal> {
        let needed = roles(for: t)
        guard !actor.roles.isDisjoint(with: needed) else { return .failure(.missingRole(needed)) }
        let (from, to) = edge(t)
        guard status == from else { return .failure(.invalidTransition(from: status, allowed: allowed(from: status))) }
        switch t {
        case .approve where submittedBy == actor.id:
            return .failure(.selfApproval)
        case .return where !actor.roles.contains("Sitrep.Executive") && submittedBy != actor.id:
            return .failure(.notOwnSubmission)
        default:
            return .success(to)
        }
    }
}
