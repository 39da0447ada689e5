-- Argo CD health check for netloom.io/RemoteNodePeer: a node of a remote cluster, mirrored by
-- the Netloom operator from that cluster's NodePeer (ClusterMeshPeer) so that local agents peer
-- with it. Everything is in the spec, written by the operator; no status, no conditions.
--   Healthy      the mirror carries the remote node's key, endpoint and pod CIDRs
--   Progressing  one of them is missing (the operator mirrors only complete entries, so this
--                is a hand-made or half-written object)
-- Never Degraded: the connection to the remote cluster is judged on its ClusterMeshPeer.
-- RemoteNodePeers are created by the operator, not Git: Argo CD only shows them if you track
-- them (docs/gitops.md). Argo CD runs this with the base and table libraries only.
local hs = {}

local function present(value)
  return value ~= nil and value ~= ""
end

local spec = obj.spec or {}
local peer = spec.peer or {}
local node = obj.metadata.name
if present(spec.clusterName) and present(spec.nodeName) then
  node = spec.clusterName .. "/" .. spec.nodeName
end

if not present(peer.publicKey) or not present(peer.nodeIP) or peer.listenPort == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the key and endpoint of remote node " .. node
  return hs
end
if spec.podCIDRs == nil or #spec.podCIDRs == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the pod CIDRs of remote node " .. node
  return hs
end

hs.status = "Healthy"
hs.message = "remote node " .. node .. " at " .. peer.nodeIP .. ", mirrored from its cluster"
if present(peer.nextPublicKey) then
  hs.message = hs.message .. "; a key rotation is announced"
end
return hs
