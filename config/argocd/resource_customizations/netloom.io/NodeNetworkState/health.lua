-- Argo CD health check for netloom.io/NodeNetworkState: spec written by the Netloom operator,
-- status by the agent on that node (conditions Ready and Degraded, observedGeneration = the
-- generation it applied, drift).
--   Healthy      the agent applied the current generation and the kernel matches it
--   Progressing  the agent has not applied the current generation yet
--   Degraded     the apply failed (Degraded=True / Ready=False), or the kernel drifted and was
--                not healed (drift mode Report)
-- NodeNetworkStates are created by the operator, not Git: Argo CD only shows them if you track
-- them (docs/gitops.md). Argo CD runs this with the base and table libraries only.
local hs = {}

local function findCondition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function text(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return condition.reason or condition.type
end

local generation = obj.metadata.generation or 0
local node = obj.metadata.name
if obj.spec ~= nil and obj.spec.nodeName ~= nil then
  node = obj.spec.nodeName
end
local status = obj.status or {}
local applied = status.observedGeneration or 0
local degraded = findCondition(status.conditions, "Degraded")
local ready = findCondition(status.conditions, "Ready")

-- A failed apply does not move observedGeneration: judge the failure by the condition's own
-- generation, so that a failure of the current spec is Degraded, not Progressing forever.
local function current(condition)
  return condition ~= nil
    and (condition.observedGeneration == nil or condition.observedGeneration >= generation)
end

if current(degraded) and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = "Agent on " .. node .. " failed to apply generation " .. generation .. ": "
    .. text(degraded)
  return hs
end
if current(ready) and ready.status == "False" and ready.reason ~= "Applying" then
  hs.status = "Degraded"
  hs.message = "Agent on " .. node .. " failed to apply generation " .. generation .. ": "
    .. text(ready)
  return hs
end
if applied < generation then
  hs.status = "Progressing"
  if status.observedGeneration == nil then
    hs.message = "Waiting for the agent on " .. node .. " to report"
  else
    hs.message = "Waiting for the agent on " .. node .. " to apply generation " .. generation
      .. " (applied " .. applied .. ")"
  end
  return hs
end
if status.drift ~= nil and status.drift.drifted == true then
  hs.status = "Degraded"
  local why = status.drift.lastDriftReason or "kernel state differs from the spec"
  hs.message = "Datapath on " .. node .. " drifted from generation " .. generation .. ": " .. why
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the agent on " .. node .. " to report Ready"
return hs
