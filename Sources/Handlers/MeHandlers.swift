import Generated
import SitrepRuntime

extension SitrepHandlers {
    public func getMe(_ input: GetMe.Input, context: OperationContext) async throws -> GetMe.Output {
        let p = context.caller
        let roles = p.roles.compactMap(Role.init(rawValue:)).sorted { $0.rawValue < $1.rawValue }
        return .ok(
            Me(
                id: p.id, tenantId: p.tenantId, objectId: p.objectId, displayName: p.displayName, roles: roles,
                mfa: p.authContexts.contains(stepUpContext), isApplication: p.isApplication, sessionExpiresAt: p.sessionExpiresAt))
    }
}
