/** Hash of the rendered spec, so the operator skips writes and the agent reports what it applied. */
export const SPEC_HASH_ANNOTATION = "netloom.io/spec-hash";
export const OPERATOR_FIELD_MANAGER = "netloom-operator";
export const CLEANUP_FINALIZER = "netloom.io/cleanup";
