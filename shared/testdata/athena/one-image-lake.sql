-- trail-for: sign
SELECT
  e.eventid AS eventid,
  to_iso8601(e.eventtime) AS eventtime,
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
  json_format(CAST(e.requestparameters AS JSON)) AS requestparameters,
  json_format(CAST(e.responseelements AS JSON)) AS responseelements,
  filter(e.resources, x -> x.arn IN ('arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'))[1].arn AS resource_arn,
  filter(e.resources, x -> x.arn IN ('arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'))[1].type AS resource_type,
  CAST(NULL AS varchar) AS path
FROM a1b2c3d4-5678-90ab-cdef-EXAMPLE11111 e
WHERE e.eventtime >= '2025-01-01 00:00:00'
  AND e.eventtime <= '2025-12-31 23:59:59'
  AND e.eventsource = 'kms.amazonaws.com'
  AND e.eventname = 'Sign'
  AND cardinality(filter(e.resources, x -> x.arn IN ('arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'))) > 0;

-- trail-for: pushes
SELECT
  e.eventid AS eventid,
  to_iso8601(e.eventtime) AS eventtime,
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
  json_format(CAST(e.requestparameters AS JSON)) AS requestparameters,
  json_format(CAST(e.responseelements AS JSON)) AS responseelements,
  CAST(NULL AS varchar) AS resource_arn,
  CAST(NULL AS varchar) AS resource_type,
  CAST(NULL AS varchar) AS path
FROM a1b2c3d4-5678-90ab-cdef-EXAMPLE11111 e
WHERE e.eventtime >= '2025-01-01 00:00:00'
  AND e.eventtime <= '2025-12-31 23:59:59'
  AND e.eventsource = 'ecr.amazonaws.com'
  AND e.eventname = 'PutImage'
  AND (json_extract_scalar(element_at(e.responseelements, 'image'), '$.imageId.imageDigest') IN ('sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08')
    OR element_at(e.requestparameters, 'imageTag') LIKE 'sha256-%.sig'
    OR element_at(e.requestparameters, 'imageManifest') LIKE '%"subject"%');

-- trail-for: roles
SELECT
  e.eventid AS eventid,
  to_iso8601(e.eventtime) AS eventtime,
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
  json_format(CAST(e.requestparameters AS JSON)) AS requestparameters,
  json_format(CAST(e.responseelements AS JSON)) AS responseelements,
  CAST(NULL AS varchar) AS resource_arn,
  CAST(NULL AS varchar) AS resource_type,
  CAST(NULL AS varchar) AS path
FROM a1b2c3d4-5678-90ab-cdef-EXAMPLE11111 e
WHERE e.eventtime >= '2025-01-01 00:00:00'
  AND e.eventtime <= '2025-12-31 23:59:59'
  AND e.eventsource = 'sts.amazonaws.com'
  AND e.eventname IN ('AssumeRoleWithWebIdentity', 'AssumeRole')
  AND (json_extract_scalar(element_at(e.responseelements, 'credentials'), '$.accessKeyId') IN ('ASIAEXAMPLECALLER'));

