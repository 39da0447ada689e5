import type { CoreV1Api } from "@kubernetes/client-node";

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; uid?: string };
}

/**
 * Records a core/v1 Event about obj. Events of cluster-scoped objects go to "default", where
 * `kubectl describe` finds them. Best effort: returns the error instead of throwing.
 */
export async function recordEvent(
  core: CoreV1Api,
  component: string,
  obj: EventTarget,
  type: "Normal" | "Warning",
  reason: string,
  message: string,
  now = new Date(),
): Promise<Error | undefined> {
  const namespace = obj.metadata.namespace ?? "default";
  try {
    await core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${obj.metadata.name}.`, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata.name,
          ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
          ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        reportingComponent: component,
        reportingInstance: component,
      },
    });
    return undefined;
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}
