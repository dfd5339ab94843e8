/// Nova's instance states and how they show as a server `status`.
///
/// `vm_state` is what the instance is (the desired, stable state); `task_state` the operation in
/// flight, which is also the work item: the scheduler or the host's agent carries it out and
/// clears it. `power_state` is what the hypervisor last reported.
public enum VMState: String, Sendable {
    case building, active, stopped, paused, suspended, resized, error, deleted
}

public enum TaskState: String, Sendable, CaseIterable {
    case scheduling
    case spawning
    case deleting
    case poweringOff = "powering-off"
    case poweringOn = "powering-on"
    case rebooting
    case rebootingHard = "rebooting_hard"
    case pausing
    case unpausing
    case suspending
    case resuming
    case rebuilding
    case resizePrep = "resize_prep"
    case resizeReverting = "resize_reverting"
    case imageSnapshot = "image_snapshot"
}

public enum ServerStatus {
    /// The API `status` of an instance, as Nova derives it from vm_state and task_state.
    public static func of(vmState: VMState, taskState: TaskState?) -> String {
        switch (vmState, taskState) {
        case (.building, _): "BUILD"
        case (_, .rebooting?): "REBOOT"
        case (_, .rebootingHard?): "HARD_REBOOT"
        case (_, .rebuilding?): "REBUILD"
        case (.active, .resizePrep?), (.stopped, .resizePrep?): "RESIZE"
        case (.resized, .resizeReverting?): "REVERT_RESIZE"
        case (.active, _): "ACTIVE"
        case (.stopped, _): "SHUTOFF"
        case (.paused, _): "PAUSED"
        case (.suspended, _): "SUSPENDED"
        case (.resized, _): "VERIFY_RESIZE"
        case (.error, _): "ERROR"
        case (.deleted, _): "DELETED"
        }
    }
}
