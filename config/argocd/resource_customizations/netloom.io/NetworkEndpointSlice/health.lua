-- Argo CD health check for netloom.io/NetworkEndpointSlice: the pods of one node as policy needs
-- them (addresses, identity, named ports), one slice per node, named after it. Written by the
-- Netloom operator in one write, watched by every agent instead of Pods. Everything is in the
-- spec; no status, no conditions.
--   Healthy      the slice names its node (any number of pods, none included)
--   Progressing  no node name or no endpoint list (the operator writes both at once, so this is
--                a hand-made or half-written object)
-- Never Degraded: a slice is data; a policy that cannot be realized shows on its NetworkPolicy
-- and its PolicyRealization, a node's failures on its NodeNetworkState.
-- NetworkEndpointSlices are created by the operator, not Git: Argo CD only shows them if you
-- track them (docs/gitops.md). Argo CD runs this with the base and table libraries only.
local hs = {}

local spec = obj.spec or {}

if spec.nodeName == nil or spec.nodeName == "" or spec.endpoints == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to write the node and pods of this slice"
  return hs
end

hs.status = "Healthy"
if #spec.endpoints == 0 then
  hs.message = spec.nodeName .. " runs no pod with an address and an identity"
else
  hs.message = spec.nodeName .. ": " .. #spec.endpoints .. " pod(s) with an address and an identity"
end
return hs
