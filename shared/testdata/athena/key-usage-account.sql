-- trail-for: sign
SELECT
  e.eventid AS eventid,
  e.eventtime AS eventtime,
  e.eventsource AS eventsource,
  e.eventname AS eventname,
  e.awsregion AS awsregion,
  e.recipientaccountid AS recipientaccountid,
  e.requestid AS requestid,
  e.errorcode AS errorcode,
  e.errormessage AS errormessage,
  e.useridentity.type AS identity_type,
  e.useridentity.principalid AS identity_principalid,
  e.useridentity.arn AS identity_arn,
  e.useridentity.accountid AS identity_accountid,
  e.useridentity.accesskeyid AS identity_accesskeyid,
  e.useridentity.username AS identity_username,
  e.useridentity.invokedby AS identity_invokedby,
  e.useridentity.identityprovider AS identity_identityprovider,
  e.useridentity.sessioncontext.sessionissuer.arn AS identity_issuer_arn,
  e.useridentity.sessioncontext.webidfederationdata.federatedprovider AS identity_federatedprovider,
  e.requestparameters AS requestparameters,
  e.responseelements AS responseelements,
  filter(e.resources, x -> x.arn IN ('arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'))[1].arn AS resource_arn,
  filter(e.resources, x -> x.arn IN ('arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'))[1].type AS resource_type,
  e."$path" AS path
FROM "default"."cloudtrail_logs_pp" e
WHERE e."timestamp" >= '2025/11/09'
  AND e.eventtime >= '2025-11-10T00:00:00Z'
  AND e.eventsource = 'kms.amazonaws.com'
  AND e.eventname = 'Sign'
  AND cardinality(filter(e.resources, x -> x.arn IN ('arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'))) > 0;

-- trail-for: pushes
SELECT
  e.eventid AS eventid,
  e.eventtime AS eventtime,
  e.eventsource AS eventsource,
  e.eventname AS eventname,
  e.awsregion AS awsregion,
  e.recipientaccountid AS recipientaccountid,
  e.requestid AS requestid,
  e.errorcode AS errorcode,
  e.errormessage AS errormessage,
  e.useridentity.type AS identity_type,
  e.useridentity.principalid AS identity_principalid,
  e.useridentity.arn AS identity_arn,
  e.useridentity.accountid AS identity_accountid,
  e.useridentity.accesskeyid AS identity_accesskeyid,
  e.useridentity.username AS identity_username,
  e.useridentity.invokedby AS identity_invokedby,
  e.useridentity.identityprovider AS identity_identityprovider,
  e.useridentity.sessioncontext.sessionissuer.arn AS identity_issuer_arn,
  e.useridentity.sessioncontext.webidfederationdata.federatedprovider AS identity_federatedprovider,
  e.requestparameters AS requestparameters,
  e.responseelements AS responseelements,
  CAST(NULL AS varchar) AS resource_arn,
  CAST(NULL AS varchar) AS resource_type,
  e."$path" AS path
FROM "default"."cloudtrail_logs_pp" e
WHERE e."timestamp" >= '2025/11/09'
  AND e.eventtime >= '2025-11-10T00:00:00Z'
  AND e.eventsource = 'ecr.amazonaws.com'
  AND e.eventname = 'PutImage'
  AND (json_extract_scalar(e.requestparameters, '$.imageTag') LIKE 'sha256-%.sig'
    OR json_extract_scalar(e.requestparameters, '$.imageManifest') LIKE '%"subject"%');

