-- The nine FxA auth-database tables that token pruning reads or touches,
-- with the keys and indexes of ../shared/fxa-pruning-reference.md.
-- Timestamps are milliseconds since the Unix epoch. Kept to portable MySQL so
-- that MariaDB, MySQL and the go-mysql-server sandbox all accept it.

CREATE TABLE sessionTokens (
  tokenId BINARY(32) NOT NULL,
  tokenData BINARY(32) NOT NULL,
  uid BINARY(16) NOT NULL,
  createdAt BIGINT UNSIGNED NOT NULL,
  uaBrowser VARCHAR(255),
  uaBrowserVersion VARCHAR(255),
  uaOS VARCHAR(255),
  uaOSVersion VARCHAR(255),
  uaDeviceType VARCHAR(255),
  uaFormFactor VARCHAR(255),
  lastAccessTime BIGINT UNSIGNED NOT NULL DEFAULT 0,
  authAt BIGINT UNSIGNED,
  verificationMethod INT,
  verifiedAt BIGINT UNSIGNED,
  mustVerify BOOLEAN NOT NULL DEFAULT FALSE,
  providerId TINYINT,
  PRIMARY KEY (tokenId),
  INDEX session_uid (uid),
  INDEX sessionTokens_createdAt (createdAt),
  INDEX sessionTokens_uid_lastAccessTime (uid, lastAccessTime)
) ENGINE=InnoDB;

CREATE TABLE unverifiedTokens (
  tokenId BINARY(32) NOT NULL,
  tokenVerificationId BINARY(16) NOT NULL,
  uid BINARY(16) NOT NULL,
  mustVerify BOOLEAN NOT NULL DEFAULT TRUE,
  tokenVerificationCodeHash BINARY(32),
  tokenVerificationCodeExpiresAt BIGINT UNSIGNED,
  PRIMARY KEY (tokenId),
  UNIQUE INDEX UQ_unverifiedTokens_codeHash_uid (tokenVerificationCodeHash, uid),
  INDEX IDX_unverifiedTokens_uid_tokenVerificationId (uid, tokenVerificationId)
) ENGINE=InnoDB;

CREATE TABLE devices (
  uid BINARY(16) NOT NULL,
  id BINARY(16) NOT NULL,
  sessionTokenId BINARY(32),
  refreshTokenId BINARY(32),
  nameUtf8 VARCHAR(255),
  type VARCHAR(16),
  createdAt BIGINT UNSIGNED,
  callbackURL VARCHAR(255),
  callbackPublicKey CHAR(88),
  callbackAuthKey CHAR(24),
  callbackIsExpired BOOLEAN NOT NULL DEFAULT FALSE,
  PRIMARY KEY (uid, id),
  UNIQUE INDEX UQ_devices_sessionTokenId (uid, sessionTokenId)
) ENGINE=InnoDB;

CREATE TABLE accountResetTokens (
  tokenId BINARY(32) NOT NULL,
  tokenData BINARY(32) NOT NULL,
  uid BINARY(16) NOT NULL,
  createdAt BIGINT UNSIGNED NOT NULL,
  verificationMethod INT,
  PRIMARY KEY (tokenId),
  UNIQUE INDEX accountResetTokens_uid (uid),
  INDEX accountResetTokens_createdAt (createdAt)
) ENGINE=InnoDB;

CREATE TABLE passwordForgotTokens (
  tokenId BINARY(32) NOT NULL,
  tokenData BINARY(32) NOT NULL,
  uid BINARY(16) NOT NULL,
  passCode BINARY(16) NOT NULL,
  createdAt BIGINT UNSIGNED NOT NULL,
  tries SMALLINT UNSIGNED NOT NULL,
  verificationMethod INT,
  PRIMARY KEY (tokenId),
  UNIQUE INDEX passwordForgotTokens_uid (uid),
  INDEX passwordForgotTokens_createdAt (createdAt)
) ENGINE=InnoDB;

CREATE TABLE passwordChangeTokens (
  tokenId BINARY(32) NOT NULL,
  tokenData BINARY(32) NOT NULL,
  uid BINARY(16) NOT NULL,
  createdAt BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (tokenId),
  UNIQUE INDEX passwordChangeTokens_uid (uid),
  INDEX passwordChangeTokens_createdAt (createdAt)
) ENGINE=InnoDB;

CREATE TABLE keyFetchTokens (
  tokenId BINARY(32) NOT NULL,
  authKey BINARY(32) NOT NULL,
  uid BINARY(16) NOT NULL,
  keyBundle BINARY(96) NOT NULL,
  createdAt BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (tokenId),
  INDEX keyFetchTokens_uid (uid)
) ENGINE=InnoDB;

CREATE TABLE unblockCodes (
  uid BINARY(16) NOT NULL,
  unblockCodeHash BINARY(32) NOT NULL,
  createdAt BIGINT NOT NULL,
  PRIMARY KEY (uid, unblockCodeHash),
  INDEX unblockCodes_createdAt (createdAt)
) ENGINE=InnoDB;

CREATE TABLE signinCodes (
  hash BINARY(32) NOT NULL,
  uid BINARY(16) NOT NULL,
  createdAt BIGINT UNSIGNED NOT NULL,
  flowId BINARY(32),
  PRIMARY KEY (hash),
  INDEX signinCodes_createdAt (createdAt),
  INDEX signinCodes_uid (uid)
) ENGINE=InnoDB;
