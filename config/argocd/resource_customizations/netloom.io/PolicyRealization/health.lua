-- Argo CD health check for netloom.io/PolicyRealization: how far the NetworkPolicy of the same
-- namespace and name is realized in the datapath. The Netloom operator creates it (owned by the
-- policy, so Argo CD shows it under the NetworkPolicy in the resource tree), sets
-- spec.policyGeneration to the policy's generation, and writes the status with kstatus
-- conventions: observedGeneration and the conditions Ready, Reconciling and Stalled, over the
-- nodes hosting the pods the policy selects.
--   Healthy      Ready=True for the current generation (in audit mode, with the would-drop count)
--   Progressing  the operator has not observed the current generation yet, Reconciling=True,
--                or no Ready verdict yet
--   Degraded     Stalled=True (a node failed to apply the policy or cannot enforce it), or
--                Ready=False with selected nodes failing
-- Argo CD runs this with the base and table libraries only: no string library here.
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
local status = obj.status or {}
local observed = status.observedGeneration or 0

if observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
    .. " (observed " .. observed .. ")"
  return hs
end

local stalled = findCondition(status.conditions, "Stalled")
local reconciling = findCondition(status.conditions, "Reconciling")
local ready = findCondition(status.conditions, "Ready")

-- A condition computed for an older generation says nothing about the current spec.
local function current(condition)
  return condition ~= nil
    and (condition.observedGeneration == nil or condition.observedGeneration >= generation)
end

if current(stalled) and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled)
  return hs
end
if current(reconciling) and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = text(reconciling)
  return hs
end
if current(ready) and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready)
  if status.mode == "Audit" then
    hs.message = hs.message .. "; audit mode: " .. (status.wouldDrop or 0) .. " would-drop"
  end
  return hs
end
if current(ready) and ready.status == "False" then
  local desired = status.desiredNodes or 0
  local readyNodes = status.readyNodes or 0
  if readyNodes < desired then
    hs.status = "Degraded"
    hs.message = readyNodes .. "/" .. desired .. " nodes ready: " .. text(ready)
    return hs
  end
  hs.status = "Progressing"
  hs.message = text(ready)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the operator to report Ready for generation " .. generation
return hs
