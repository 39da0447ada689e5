-- Argo CD health check for netloom.io/NodeNetworkState: spec (the node's name only) written once
-- by the Netloom operator, status by the agent on that node, which renders the node's datapath
-- from the sources it watches (status.sources: the NetworkConfig, EncryptionProfile and
-- BandwidthPolicies, with the generations it applied last or is failing to apply; conditions
-- Ready and Degraded; drift). metadata.generation stays 1: there is no observedGeneration.
--   Healthy      Ready=True: the agent applied what its sources ask, and the kernel matches it
--   Progressing  the agent has not reported a Ready verdict yet, or is still applying
--   Degraded     Degraded=True (the apply failed, a source is not usable, part of the desired
--                state is not enforced, a drift check failed), Ready=False, or the kernel
--                drifted and was not healed (drift mode Report)
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

local node = obj.metadata.name
if obj.spec ~= nil and obj.spec.nodeName ~= nil then
  node = obj.spec.nodeName
end
local status = obj.status or {}
local degraded = findCondition(status.conditions, "Degraded")
local ready = findCondition(status.conditions, "Ready")

-- What the agent was doing when it failed, by the condition's reason (NotEnforced and others:
-- the message says it).
local failedTo = {
  ApplyFailed = " failed to apply",
  InvalidSpec = " cannot use its sources",
  DriftCheckFailed = " failed a drift check",
}

local function problem(condition)
  return "Agent on " .. node .. (failedTo[condition.reason] or "") .. ": " .. text(condition)
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the agent on " .. node .. " to report"
  return hs
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = problem(degraded)
  return hs
end
if ready.status == "False" and ready.reason ~= "Applying" then
  hs.status = "Degraded"
  hs.message = problem(ready)
  return hs
end
if status.drift ~= nil and status.drift.drifted == true then
  hs.status = "Degraded"
  local why = status.drift.lastDriftReason or "kernel state differs from the desired state"
  hs.message = "Datapath on " .. node .. " drifted: " .. why
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the agent on " .. node .. " to report Ready: " .. text(ready)
return hs
