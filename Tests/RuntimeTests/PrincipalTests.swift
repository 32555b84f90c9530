import Testing

@testable import SitrepRuntime

/// `Principal` keeps its fields behind one shared reference; it must still behave as a value.
@Suite("Principal")
struct PrincipalTests {
    static func make() -> Principal {
        Principal(id: "t:o", tenantId: "t", objectId: "o", displayName: "Ada", roles: ["Sitrep.Viewer"], authContexts: ["c1"])
    }

    @Test func settingAFieldChangesOnlyThatCopy() {
        let original = Self.make()
        var changed = original
        changed.scheme = "sessionCookie"
        changed.roles.insert("Sitrep.Admin")
        changed.sessionKey = "k"
        #expect(original.scheme == "bearerAuth" && original.roles == ["Sitrep.Viewer"] && original.sessionKey == nil)
        #expect(changed.scheme == "sessionCookie" && changed.roles == ["Sitrep.Viewer", "Sitrep.Admin"] && changed.sessionKey == "k")
        #expect(changed.id == "t:o" && changed.displayName == "Ada" && changed.authContexts == ["c1"])
    }

    @Test func equalityAndHashingFollowTheFields() {
        let a = Self.make()
        var b = Self.make()
        #expect(a == b && a.hashValue == b.hashValue)
        b.displayName = nil
        #expect(a != b)
        b.displayName = "Ada"
        #expect(a == b && a.hashValue == b.hashValue)
        #expect(Set([a, b, Self.make()]).count == 1)
    }

    @Test func anyRoleOfAList() {
        var p = Self.make()
        #expect(p.hasAnyRole(of: ["Sitrep.Admin", "Sitrep.Viewer"]))
        #expect(!p.hasAnyRole(of: ["Sitrep.Admin", "Sitrep.BriefingWriter"]))
        #expect(!p.hasAnyRole(of: []))
        p.roles = []
        #expect(!p.hasAnyRole(of: ["Sitrep.Viewer"]))
        // Exact, case-sensitive names, as in the token's `roles` claim.
        #expect(!Self.make().hasAnyRole(of: ["sitrep.viewer"]))
    }
}
