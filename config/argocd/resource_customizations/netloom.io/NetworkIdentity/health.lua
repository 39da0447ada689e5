-- Argo CD health check for netloom.io/NetworkIdentity: the security identity of every pod with
-- one set of policy-relevant labels. The Netloom operator allocates it once per label set, in
-- one write: the name is the identity's number, the label netloom.io/label-set is the key the
-- operator finds it by, and the spec holds the namespace and the pod and namespace labels that
-- policies select on. Everything is in the spec; no status, no conditions.
--   Healthy      the identity has its number, its netloom.io/label-set label and its namespace
--   Progressing  one of them is missing (the operator writes all of them at once, so this is a
--                hand-made or half-written object, which no pod gets)
-- Never Degraded: an identity is data; a policy that cannot be realized shows on its
-- NetworkPolicy and its PolicyRealization.
-- NetworkIdentities are created by the operator, not Git: Argo CD only shows them if you track
-- them (docs/gitops.md). Argo CD runs this with the base and table libraries only.
local hs = {}

local function present(value)
  return value ~= nil and value ~= ""
end

local spec = obj.spec or {}
local name = obj.metadata.name or ""
local labels = obj.metadata.labels or {}

if not present(spec.namespace) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to write the labels of identity " .. name
  return hs
end
local number = tonumber(name)
if number == nil or number < 1 or number % 1 ~= 0 then
  hs.status = "Progressing"
  hs.message = "NetworkIdentity " .. name .. " is not named by its number: no pod gets it"
  return hs
end
if not present(labels["netloom.io/label-set"]) then
  hs.status = "Progressing"
  hs.message = "Identity " .. name
    .. " has no netloom.io/label-set label: the operator cannot find it, so no pod gets it"
  return hs
end

local count = 0
for _ in pairs(spec.podLabels or {}) do
  count = count + 1
end
hs.status = "Healthy"
hs.message = "identity " .. name .. ": pods in namespace " .. spec.namespace .. " with " .. count
  .. " policy label(s)"
return hs
