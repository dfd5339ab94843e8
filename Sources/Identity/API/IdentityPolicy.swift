import NimbusCore

/// Keystone's default policy, reduced to the rules its default roles give:
/// `admin` (in any scope, as with `enforce_scope = false`) manages everything, a system-scoped
/// `reader` reads everything, and every user may act on their own user, token and credentials.
enum IdentityPolicy {
    static func enforce(_ allowed: Bool, _ action: String) throws(NimbusError) {
        if !allowed {
            throw .forbidden("You are not authorized to perform the requested action: identity:\(action).")
        }
    }

    static func canManage(_ auth: AuthContext) -> Bool { auth.isAdmin }

    static func canReadAll(_ auth: AuthContext) -> Bool {
        auth.isAdmin || (auth.isSystemScoped && auth.isReader)
    }

    /// Admins, system readers and the user themself.
    static func isSelfOrReader(_ auth: AuthContext, userID: String) -> Bool {
        canReadAll(auth) || auth.user.id == userID
    }
}
