-- Argo CD health check for netloom.io/NodePeer: what the other nodes need to reach one node
-- through WireGuard. Spec (nodeName, podCIDRs) written by the Netloom operator from the Node,
-- status by the agent on that node: profile, publicKey, nodeIP and listenPort while the node is
-- in an EncryptionProfile (an empty status while it is in none), nextPublicKey and
-- nextKeySwitchTime while a key rotation is announced. No conditions, no observedGeneration.
--   Healthy      the node publishes its key and endpoint in a profile, or is in no profile
--   Progressing  the agent has not written the status yet, or the node is in a profile but its
--                key, endpoint or pod CIDRs are not there yet (peers cannot reach it)
-- Never Degraded: a node's failures are in its NodeNetworkState.
-- NodePeers are created by the operator, not Git: Argo CD only shows them if you track them
-- (docs/gitops.md). Argo CD runs this with the base and table libraries only.
local hs = {}

local function present(value)
  return value ~= nil and value ~= ""
end

-- "a", "a and b", "a, b and c"
local function join(items)
  local out = ""
  for i, item in ipairs(items) do
    if i == 1 then
      out = item
    elseif i == #items then
      out = out .. " and " .. item
    else
      out = out .. ", " .. item
    end
  end
  return out
end

local spec = obj.spec or {}
local node = obj.metadata.name
if spec.nodeName ~= nil then
  node = spec.nodeName
end
local status = obj.status

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the agent on " .. node .. " to report"
  return hs
end
if not present(status.profile) then
  hs.status = "Healthy"
  hs.message = node .. " is not in any EncryptionProfile"
  return hs
end

local profile = " (EncryptionProfile " .. status.profile .. ")"
local missing = {}
if not present(status.publicKey) then
  table.insert(missing, "public key")
end
if not present(status.nodeIP) then
  table.insert(missing, "node IP")
end
if status.listenPort == nil then
  table.insert(missing, "listen port")
end
if #missing > 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the agent on " .. node .. " to publish its " .. join(missing) .. profile
  return hs
end
if spec.podCIDRs == nil or #spec.podCIDRs == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to copy the pod CIDRs of " .. node .. " from its Node"
    .. profile
  return hs
end

hs.status = "Healthy"
hs.message = node .. " publishes its WireGuard key in EncryptionProfile " .. status.profile
if present(status.nextPublicKey) then
  hs.message = hs.message .. "; a key rotation is announced"
  if present(status.nextKeySwitchTime) then
    hs.message = hs.message .. ", switching keys at " .. status.nextKeySwitchTime
  end
end
return hs
