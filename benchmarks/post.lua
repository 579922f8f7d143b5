-- wrk script: POST a Landbot one-message body, a new message id (uuid) per request.
local body_template = [[{"messages":[{"_raw":{"chat":%d,"uuid":"bench-%d-%d","type":"text","channel":761536,"timestamp":%f},"type":"text","data":{"body":"hello, I need help with my order"},"timestamp":%f,"sender":{"id":1,"name":"visitor","type":"customer"},"customer":{"id":1,"country":"spain"},"channel":{"id":761536,"name":"bench","type":"landbot"}}]}]]
local counter = 0
local thread_id = math.random(1, 1000000)
request = function()
  counter = counter + 1
  local ts = 1700000000 + counter / 1000
  local body = string.format(body_template, counter % 1000, thread_id, counter, ts, ts)
  return wrk.format("POST", "/hooks/default", {["Content-Type"] = "application/json"}, body)
end
