export const OPERATOR_FIELD_MANAGER = "netloom-operator";
export const CLEANUP_FINALIZER = "netloom.io/cleanup";
